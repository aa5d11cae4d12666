"""``python -m afterward`` is the `afterward` command."""

from .cli import main

main()
