"""The Redis store's Lua scripts: one per multi-step operation, in its ``lua/`` folder."""

from __future__ import annotations

from importlib import resources

__all__ = ["SCRIPT_NAMES", "load_script"]

SCRIPT_NAMES = (
    "enqueue",
    "acquire",
    "extend_leases",
    "complete",
    "fail",
    "release",
    "lost",
    "lease_holders",
    "cancel",
    "retry",
    "purge",
    "spoil",
)
"""One Lua script per multi-step operation, in ``lua/<name>.lua``."""


def load_script(name: str) -> str:
    """The text of ``lua/<name>.lua``, preceded by the shared helpers of ``lua/_lib.lua``."""
    folder = resources.files("afterward.stores.redis").joinpath("lua")
    lib = folder.joinpath("_lib.lua").read_text(encoding="utf-8")
    return lib + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
