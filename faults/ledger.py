"""The external ledger: a SQLite database, separate from any store, that tasks write to
*after* doing their work. It is the ground truth of what ran, and how many times."""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

__all__ = ["Ledger", "record"]

LEDGER_ENV = "AFTERWARD_FAULTS_LEDGER"


def record(key: str) -> None:
    """Note that the task `key` ran to its end in this process (called by tasks)."""
    path = os.environ[LEDGER_ENV]
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute(
            "INSERT INTO runs (key, pid, at) VALUES (?, ?, ?)", (key, os.getpid(), time.time())
        )
    finally:
        conn.close()


class Ledger:
    """The ledger file of one experiment run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT NOT NULL, pid INT, at REAL)")
        conn.close()

    def env(self) -> dict[str, str]:
        """What a worker process needs in its environment to write here."""
        return {LEDGER_ENV: str(self.path)}

    def runs(self) -> Counter[str]:
        """How many times each key ran to its end."""
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            return Counter(key for (key,) in conn.execute("SELECT key FROM runs"))
        finally:
            conn.close()

    def count(self) -> int:
        """Runs recorded so far (all keys)."""
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
        finally:
            conn.close()
