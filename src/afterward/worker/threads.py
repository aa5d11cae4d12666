"""The threads plain (`def`) task functions run in.

A call goes to a thread through one queue and its outcome comes back to the caller's event
loop with one `call_soon_threadsafe`: no `concurrent.futures.Future` (with its condition
variable and the callbacks that chain it to an asyncio future) per call, which is most of
what a thread hop costs for a short task. Threads start as calls need them, up to the limit.

The threads are daemons: a process that exits does not wait for them (a pool its owner
never shut down would otherwise hold the interpreter at exit forever, and so would one
stuck task). The runner stops them first on a graceful stop; a task cut short by the exit
runs again, as after any crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Call", "TaskThreads"]


class Call:
    """One call handed to a thread: what it runs, and where its outcome goes."""

    __slots__ = ("fn", "future", "loop", "state")

    def __init__(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.state = _WAITING


_WAITING, _RUNNING, _DONE, _CANCELLED = range(4)


class TaskThreads:
    """Up to `limit` threads running calls in the order they come."""

    def __init__(self, limit: int, name: str) -> None:
        self._limit = limit
        self._name = name
        self._calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        """Guards each call's state, the thread counts and `_overrunning`."""
        self._threads = 0
        self._idle = 0
        self._closed = False
        self._overrunning: set[Call] = set()

    @property
    def overrunning(self) -> int:
        """Calls given up on (`give_up`) whose function still runs in its thread."""
        return len(self._overrunning)

    def submit(self, fn: Callable[[], Any]) -> Call:
        """Queue `fn` for a thread; its outcome settles `Call.future` on this loop.

        :raises RuntimeError: after `shutdown`.
        """
        call = Call(fn, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                raise RuntimeError("the task threads are shut down")
            start = self._idle == 0 and self._threads < self._limit
            if start:
                self._threads += 1
            else:
                self._idle -= 1  # a waiting thread takes it (or the next call started)
        self._calls.put(call)
        if start:
            threading.Thread(
                target=self._work, name=f"{self._name}_{self._threads}", daemon=True
            ).start()
        return call

    def cancel(self, call: Call) -> None:
        """If no thread took `call` yet, it never runs."""
        with self._lock:
            if call.state == _WAITING:
                call.state = _CANCELLED

    def give_up(self, call: Call) -> None:
        """The caller stopped waiting for `call` at its time limit: if no thread took it
        yet, it never runs; if one runs it, it counts in `overrunning` until its function
        returns."""
        with self._lock:
            if call.state == _WAITING:
                call.state = _CANCELLED
            elif call.state == _RUNNING:
                self._overrunning.add(call)

    def shutdown(self) -> None:
        """Take no more calls; cancel the waiting ones. Running calls finish, then their
        threads end."""
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                self.cancel(call)
                _settle_threadsafe(call, _cancel)
        for _ in range(threads):
            self._calls.put(None)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            with self._lock:
                runs = call.state == _WAITING
                if runs:
                    call.state = _RUNNING
            if runs:
                result, error = None, None
                try:
                    result = call.fn()
                except BaseException as exc:  # handed to the caller, as a Future would
                    error = exc
                with self._lock:
                    call.state = _DONE
                    self._overrunning.discard(call)
                _settle_threadsafe(call, _deliver, result, error)
                del result, error  # not kept alive until the next call
            with self._lock:
                self._idle += 1


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()


def _settle_threadsafe(call: Call, settle: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
        call.loop.call_soon_threadsafe(settle, call.future, *args)
