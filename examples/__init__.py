"""Runnable examples of afterward (``uvicorn examples.demo:app`` from the repository root)."""
