"""Task ids sort by creation time, never repeat across threads, and a forked child never
issues the random parts its parent holds."""

from __future__ import annotations

import os
import re
import threading

from afterward.calls.ids import new_task_id


def test_ids_are_32_hex_digits_in_creation_order() -> None:
    ids = [new_task_id() for _ in range(200)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert [i[:16] for i in ids] == sorted(i[:16] for i in ids)


def test_threads_taking_ids_at_once_never_share_one() -> None:
    taken: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        into.extend(new_task_id() for _ in range(5_000))

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    random_parts = [i[16:] for into in taken for i in into]
    assert len(set(random_parts)) == len(random_parts) == 20_000


def test_a_forked_child_draws_its_own_random_parts() -> None:
    # Given a parent whose pool holds random parts not yet issued
    new_task_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, "".join(new_task_id()[16:] for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    # When the parent takes the parts it holds
    parent = {new_task_id()[16:] for _ in range(10)}
    # Then the child issued none of them
    child_parts = {child[at : at + 16] for at in range(0, len(child), 16)}
    assert len(child_parts) == 10 and not child_parts & parent
