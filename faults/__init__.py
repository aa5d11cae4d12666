"""The fault suite: experiments that break processes and stores on purpose and count.

Run by hand with ``python -m faults`` (see ``faults/__main__.py``); a CI-sized run of every
experiment is part of the test suite (``tests/faults/``). Results of full runs go to
``docs/reliability.md``.
"""
