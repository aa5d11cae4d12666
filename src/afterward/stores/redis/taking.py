"""Taking tasks (acquire.lua), alone or after completions (complete.lua) in one round
trip. The script has taken every task it returns: a hash that cannot be read as a task
is handed back failed for good (`outcomes.spoil`), and the batch filled from the tasks
behind it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError

from ...jobs import Job
from ..rows import CorruptRow
from .connection import Connection
from .hashes import split_hashes, stamp
from .outcomes import complete_args, spoil

__all__ = ["Take", "acquire", "complete_and_acquire"]


class Take(NamedTuple):
    """An acquire: up to `limit` due tasks for `worker`, leased for `lease` seconds from
    `now`; of `queues`, or only the tasks `ids` (None: any). A tuple: one is made per
    acquire, and a frozen dataclass takes several times as long to make."""

    worker: str
    now: float
    lease: float
    limit: int
    queues: Sequence[str] | None
    ids: Sequence[str] | None

    def args(self, limit: int) -> list[str | int]:
        """acquire.lua's arguments, for up to `limit` tasks."""
        if self.ids is not None:
            mode, names = "ids", list(self.ids)
        elif self.queues is not None:
            mode, names = "queues", list(self.queues)
        else:
            mode, names = "all", []
        return [stamp(self.now), self.worker, stamp(self.now + self.lease), limit, mode, *names]


async def acquire(conn: Connection, take: Take) -> list[Job]:
    """The tasks taken (`take.limit` at least 1), by priority, then run_at, then id."""
    rows = await conn.run_script("acquire", *take.args(take.limit))
    return await _taken(conn, take, rows)


async def complete_and_acquire(
    conn: Connection, attempts: Sequence[tuple[str, int]], take: Take
) -> tuple[set[str], list[Job]]:
    """The `complete` and `acquire` scripts, one after the other in one round trip (a
    pipeline): each is atomic, and the acquire sees what the completions released. The
    ids completed, and the tasks taken."""
    calls: list[tuple[str, list[str | int]]] = []
    if attempts:
        calls.append(("complete", complete_args(take.worker, attempts, take.now)))
    if take.limit > 0:
        calls.append(("acquire", take.args(take.limit)))
    answers = iter(await _scripts_at_once(conn, calls))
    done = {str(i) for i in next(answers)} if attempts else set()
    rows = next(answers) if take.limit > 0 else []
    return done, await _taken(conn, take, rows)


async def _scripts_at_once(conn: Connection, calls: list[tuple[str, list[str | int]]]) -> list[Any]:
    """Run scripts in order in one pipeline; one the server lost (a restart with no
    script cache) is loaded and run again on its own, after those before it."""
    async with conn.client.pipeline(transaction=False) as pipe:
        for name, args in calls:
            pipe.evalsha(conn.scripts[name].sha, 0, conn.prefix, *args)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
    for i, ((name, args), answer) in enumerate(zip(calls, answers, strict=True)):
        if isinstance(answer, NoScriptError):
            answers[i] = await conn.run_script(name, *args)
        elif isinstance(answer, Exception):
            raise answer
    return answers


async def _taken(conn: Connection, take: Take, rows: Sequence[Sequence[str]]) -> list[Job]:
    """The acquired hashes as jobs, read one by one; those that cannot be read are
    failed for good and replaced by the tasks behind them."""
    jobs, corrupt = split_hashes(rows)
    if corrupt:
        jobs += await _refill(conn, take, corrupt, take.limit - len(jobs))
    jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))  # ids: code points sort as UTF-8
    return jobs


async def _refill(
    conn: Connection,
    take: Take,
    corrupt: list[tuple[Mapping[str, str], CorruptRow]],
    want: int,
) -> list[Job]:
    jobs: list[Job] = []
    while corrupt:
        await spoil(conn, corrupt, take.now, "failed", take.worker)
        if want - len(jobs) <= 0:
            break
        rows = await conn.run_script("acquire", *take.args(want - len(jobs)))
        more, corrupt = split_hashes(rows)
        jobs += more
    return jobs
