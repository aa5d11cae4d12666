"""SQLite schema management: fresh schema ≡ migrations, newer schemas refused, racing opens."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from afterward import SchemaTooNew
from afterward.stores import store_from_url
from afterward.stores.sql_files import load_migrations, load_schema


def _objects(conn: sqlite3.Connection) -> dict[str, str]:
    """Each table and index by name, with its definition as SQLite keeps it, spaced alike
    (ALTER TABLE ADD COLUMN appends ``, <column>`` right before the closing parenthesis)."""
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    return {name: re.sub(r" ?([(),]) ?", r"\1", " ".join(sql.split())) for name, sql in rows}


def test_fresh_schema_equals_all_migrations_applied(tmp_path: Path) -> None:
    # Given one database from schema.sql and one from every migration in order
    fresh = sqlite3.connect(tmp_path / "fresh.db")
    fresh.executescript(load_schema("afterward.stores.sqlite"))
    migrated = sqlite3.connect(tmp_path / "migrated.db")
    for migration in load_migrations("afterward.stores.sqlite"):
        migrated.executescript(migration.sql)
    # Then they hold the same tables and indexes, defined the same way
    assert _objects(fresh) == _objects(migrated)
    assert "afterward_jobs" in _objects(fresh)


async def test_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    # Given a store file whose schema version is ahead of this code
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 999").connection.commit()
    store = store_from_url(f"sqlite:///{path}")
    # When it is opened, Then it is refused with a message that says to upgrade
    with pytest.raises(SchemaTooNew, match="upgrade afterward"):
        await store.open()


async def test_reopening_keeps_data_and_version(tmp_path: Path) -> None:
    # Given a store opened once, then again
    url = f"sqlite:///{tmp_path / 'again.db'}"
    for _ in range(2):
        store = store_from_url(url)
        await store.open()
        await store.close()
    # Then the version is the latest migration's
    version = sqlite3.connect(tmp_path / "again.db").execute("PRAGMA user_version").fetchone()
    assert version[0] == load_migrations("afterward.stores.sqlite")[-1].version


def test_many_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Given 8 processes that open the same, not yet existing, store file at the same time
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = (
        "import asyncio, sys\n"
        "from afterward.stores import store_from_url\n"
        "s = store_from_url(sys.argv[1])\n"
        "asyncio.run(s.open())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, url]) for _ in range(8)]
    # Then every one succeeds and the schema was created exactly once
    assert [p.wait(60) for p in procs] == [0] * 8
    conn = sqlite3.connect(tmp_path / "race.db")
    assert (
        conn.execute("PRAGMA user_version").fetchone()[0]
        == load_migrations("afterward.stores.sqlite")[-1].version
    )
    assert conn.execute("SELECT count(*) FROM afterward_jobs").fetchone()[0] == 0
