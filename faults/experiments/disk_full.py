"""Disk full: the SQLite store on a small tmpfs that fills up under requests. Requests
answered 2xx whose tasks were not stored must be 0 (a full disk fails the request
instead); once space returns, requests and processing resume; the file passes
``PRAGMA integrity_check``. (SQLite only: the server stores manage their own disks.)"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from afterward import Afterward
from afterward.stores import JobFilter

from ..harness import Fleet, Result, wait_finished
from ..ledger import Ledger
from ..sizes import Size
from .web_kill import Server

NAME = "9 disk full (SQLite on a small tmpfs)"
DISK = "4m"
PAD = 2000


async def _stored(url: str) -> set[str]:
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        jobs = await afterward.store.list(JobFilter(), limit=1_000_000)
    finally:
        await afterward.aclose()
    return {json.loads(j.payload)["args"][0] for j in jobs}


def _fill(disk: Path, leave: int) -> Path:
    """Write a filler file so that only about `leave` bytes stay free."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """Fill the disk with requests, free it, check nothing answered was lost."""
    if kind != "sqlite":
        return Result(NAME, kind, 0, 0, 0, 0.0, notes="SQLite only"), []
    if os.geteuid() != 0:
        return Result(NAME, kind, 0, 0, 0, 0.0, notes="skipped: mounting a tmpfs needs root"), []
    disk = folder / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(disk)], check=True)
    try:
        return _run_on(disk, folder, size), []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _run_on(disk: Path, folder: Path, size: Size) -> Result:
    url = f"sqlite:///{disk / 'store.db'}"
    ledger = Ledger(folder / "ledger.db")
    server = Server(url, folder, ledger, None)
    server.env["AFTERWARD_EXECUTION"] = "workers"
    started = time.monotonic()
    answered, refused = [], 0
    try:
        server.ensure_running()
        filler = _fill(disk, leave=400_000)
        i = 0
        while refused < 20 and i < size.disk_requests:
            status = server.post(f"/orders/d{i}?pad={PAD}")
            if status == 200:
                answered.append(f"d{i}")
            else:
                refused += 1
            i += 1
        filled_at = len(answered)
        filler.unlink()  # space returns
        after = [server.post(f"/orders/after{n}?pad={PAD}") for n in range(20)]
        answered += [f"after{n}" for n, status in enumerate(after) if status == 200]
    finally:
        server.stop()
    stored = asyncio.run(_stored(url))
    fleet = Fleet(url, folder, ledger, 1, target="faults.web:app")
    try:
        wait_finished(url, len(stored), timeout=300)
    finally:
        fleet.stop()
    runs = ledger.runs()
    conn = sqlite3.connect(disk / "store.db")
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    return Result(
        experiment=NAME,
        store="sqlite",
        accepted=len(answered),
        lost=sum(1 for key in answered if runs[key] == 0),
        twice=sum(1 for c in runs.values() if c > 1),
        seconds=time.monotonic() - started,
        checks={
            "disk filled (requests refused)": refused > 0,
            "2xx answered but not stored = 0": all(key in stored for key in answered),
            "requests resume when space returns": all(s == 200 for s in after),
            "integrity_check ok": integrity == "ok",
        },
        notes=f"{filled_at} answered before full, {refused} refused while full",
    )
