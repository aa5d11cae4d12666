"""Store servers an experiment may break: the local PostgreSQL cluster, a private Redis."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

__all__ = ["PrivateRedis", "restart_postgres"]


def restart_postgres() -> float:
    """Restart the local PostgreSQL cluster in immediate mode (a crash, as clients see
    it) and wait until it accepts connections; return when it was back (time.time())."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            "restart",
            "-m",
            "immediate",
        ],
        check=True,
    )
    import psycopg

    while True:
        try:
            psycopg.connect("postgresql://127.0.0.1:5432/postgres", connect_timeout=1).close()
            return time.time()
        except psycopg.OperationalError:
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server on a free port of its own, writing an AOF with appendfsync always."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Start it and wait until it answers; return when it did (time.time())."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        while True:
            try:
                client.ping()
                client.close()
                return time.time()
            except redis.ConnectionError:
                time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL it (and reap it)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Stop it for good."""
        self.crash()
        self.proc = None
