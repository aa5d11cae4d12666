"""Each peer's own virtualenv under ``.bench/venvs/``, installed pinned on first use, so no
peer is ever a dependency of afterward (afterward runs in the project's own Python)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .systems import System

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench" / "venvs"


def python_of(system: System) -> Path:
    """The system's virtualenv Python, created and installed on first use."""
    if system.name == "afterward":
        return Path(sys.executable)
    venv = VENVS / system.name
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    wanted = "\n".join(system.requirements)
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        print(f"installing {system.name} into {venv} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *system.requirements], check=True
        )
        marker.write_text(wanted)
    return python


def web_python_of(system: System) -> Path:
    """The system's Python with FastAPI and uvicorn added, at the versions afterward has
    here, so every endpoint runs on the same web stack (`bench.web`'s peer variants)."""
    from importlib.metadata import version

    python = python_of(system)
    if system.name == "afterward":
        return python
    wanted = f"fastapi=={version('fastapi')}\nuvicorn=={version('uvicorn')}"
    marker = python.parent.parent / "web.txt"
    if not marker.exists() or marker.read_text() != wanted:
        print(f"adding FastAPI and uvicorn to {system.name}'s virtualenv …", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *wanted.split()], check=True
        )
        marker.write_text(wanted)
    return python


def versions(system: System) -> str:
    """The installed version of the system itself."""
    package = "afterward" if system.name == "afterward" else system.requirements[0]
    name = package.split("[")[0].split("=")[0]
    out = subprocess.run(
        [str(python_of(system)), "-m", "pip", "show", name], capture_output=True, text=True
    ).stdout
    return next((line.split()[1] for line in out.splitlines() if line.startswith("Version:")), "?")
