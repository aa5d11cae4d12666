"""Integration tests: the FastAPI drop-in, workers, the CLI, crashes."""
