"""Web process killed at every step of a request (in-app mode, real uvicorn, SIGKILL from a
test-only fault point): before the commit, after the commit but before the response, after
the response but before the task starts, and while the task runs. The server is started
again after each kill. Tasks of answered (2xx) requests lost must be 0; tasks of failed
endpoints stored must be 0, and so must tasks of requests killed before their commit."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from afterward import Afterward
from afterward.stores import JobFilter

from ..harness import ROOT, Result, store_url, wait_finished
from ..ledger import Ledger
from ..sizes import Size

NAME = "2 web process killed at"
POINTS = ("before_commit", "after_commit", "after_response", "while_running")
KILL_PROBABILITY = 0.25


class Server:
    """uvicorn running faults.web:app, started again after each death."""

    def __init__(self, url: str, folder: Path, ledger: Ledger, point: str | None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.folder = folder
        self.env = {
            **os.environ,
            **ledger.env(),
            "AFTERWARD_URL": url,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        if point:
            self.env["AFTERWARD_FAULT_KILL_AT"] = f"{point}:{KILL_PROBABILITY}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = (folder / "uvicorn.log").open("ab")

    def ensure_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "faults.web:app",
                "--port",
                str(self.port),
                "--log-level",
                "critical",
            ],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # killed again while starting (recovered work)
                self.ensure_running()
                return
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError("uvicorn did not start")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, path: str) -> int | None:
        """The status, or None when the server died before answering."""
        self.ensure_running()
        try:
            return httpx.post(f"{self.base}{path}", timeout=30).status_code
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()


async def _stored_keys(url: str) -> set[str]:
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        jobs = await afterward.store.list(JobFilter(), limit=1_000_000)
    finally:
        await afterward.aclose()
    return {json.loads(j.payload)["args"][0] for j in jobs}


def _point(kind: str, folder: Path, size: Size, point: str) -> tuple[Result, str]:
    folder.mkdir(parents=True, exist_ok=True)
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    server = Server(url, folder, ledger, point)
    answered: list[str] = []
    unanswered: list[str] = []
    failed: list[str] = []
    started = time.monotonic()
    try:
        for i in range(size.web_requests):
            status = server.post(f"/orders/o{i}")
            (answered if status == 200 else unanswered).append(f"o{i}")
            if i % 10 == 0 and server.post(f"/broken/b{i}") == 500:
                failed.append(f"b{i}")
    finally:
        server.stop()
    kills = server.starts - 1
    # A clean start takes back whatever the killed processes left, and runs it.
    clean = Server(url, folder, ledger, None)
    try:
        clean.ensure_running()
        stored = asyncio.run(_stored_keys(url))
        wait_finished(url, len(stored), timeout=120)
    finally:
        clean.stop()
    runs = ledger.runs()
    stored = asyncio.run(_stored_keys(url))
    checks = {
        "server killed": kills > 0,
        "failed endpoints' tasks stored = 0": not (set(failed) & stored),
    }
    if point == "before_commit":
        checks["killed-before-commit tasks stored = 0"] = not (set(unanswered) & stored)
    result = Result(
        experiment=f"{NAME} {point}",
        store=kind,
        accepted=len(answered),
        lost=sum(1 for key in answered if runs[key] == 0),
        twice=sum(1 for c in runs.values() if c > 1),
        seconds=time.monotonic() - started,
        checks=checks,
        notes=f"{kills} kills, {len(unanswered)} requests unanswered",
    )
    return result, url


def run(kind: str, folder: Path, size: Size) -> tuple[list[Result], list[str]]:
    """Every point in turn: one result per point."""
    results, urls = [], []
    for point in POINTS:
        result, url = _point(kind, folder / point, size, point)
        results.append(result)
        urls.append(url)
    return results, urls
