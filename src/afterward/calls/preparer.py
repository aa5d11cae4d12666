"""`Preparer`: one call turned into a task not yet stored, or into the stand-in of a call
kept in memory.

It names the callable (`naming`), checks the arguments against its signature, encodes
them as plain JSON or, where annotations cannot restore their types, as typed JSON
(`typed_json`), and keeps a payload only if it decodes exactly (`roundtrip`). What every
call of one callable shares is worked out once and kept while the callable lives.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..config import Settings
from ..errors import ArgumentNotSerializable, FunctionNotImportable, TaskRefused
from ..jobs import NewJob
from ..options import StoredOptions
from ..tasks import TaskRegistry, options_of
from .ids import new_task_id
from .in_memory import CallSite, record_not_durable, stand_in
from .naming import Target
from .redaction import secret_parameters
from .roundtrip import check_round_trip
from .serialization import check_arguments, decodes_unchanged, encode_call, encode_typed_call

__all__ = ["Preparer"]

log = logging.getLogger("afterward")


class _Template(NamedTuple):
    """What every call of one callable shares: the task without id or payload, and the
    callable as a worker will find it."""

    job: NewJob
    target: Target


class Preparer:
    """Turns calls into tasks for one application's registry and settings."""

    def __init__(self, registry: TaskRegistry, settings: Settings) -> None:
        self._registry = registry
        self._settings = settings
        self._stand_in_name = registry.name_of(stand_in)
        self._templates: weakref.WeakKeyDictionary[Callable[..., Any], _Template]
        self._templates = weakref.WeakKeyDictionary()
        self._declared: dict[str, bool] = {}
        """Whether each name `_check_declared` has seen is declared (see `TaskRegistry`)."""
        self.not_durable: dict[CallSite, str] = {}
        """`add_task` call sites seen by this preparer whose calls ran in memory, and why."""

    def prepare(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        scope: Mapping[str, Any] | None = None,
    ) -> NewJob:
        """Check and encode one call as a task not yet stored. `scope`: the caller's
        globals, where the object of a method is looked for by name (see `naming`).

        :raises TaskRefused: the call cannot be stored exactly (the message says why).
        """
        return self._call_of(self._template(func, scope), new_task_id(), args, kwargs)

    def prepare_many(
        self, func: Callable[..., Any], calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[NewJob]:
        """One task of `func` per item of `calls`: its positional arguments (a tuple or
        list) or its keyword arguments (a mapping)."""
        template = self._template(func, None)  # once: the same for every call
        return [
            # A tuple or list is tested first: the ABC's isinstance check is the slow one.
            self._call_of(template, new_task_id(), tuple(c), {})
            if isinstance(c, tuple | list) or not isinstance(c, Mapping)
            else self._call_of(template, new_task_id(), (), dict(c))
            for c in calls
        ]

    def _template(self, func: Callable[..., Any], scope: Mapping[str, Any] | None) -> _Template:
        """What every task of `func` shares (its id and payload left empty), kept per
        callable: a function's name and options do not change."""
        try:
            found = self._templates.get(func)
        except TypeError:  # not weakly referenceable or not hashable: worked out each time
            return self._make_template(func, scope)
        if found is None:
            found = self._make_template(func, scope)
            with contextlib.suppress(TypeError):
                self._templates[func] = found
        return found

    def _make_template(
        self, func: Callable[..., Any], scope: Mapping[str, Any] | None
    ) -> _Template:
        target = self._registry.target(func, scope)
        if not self._settings.execution == "in_app" and target.name.startswith("__main__:"):
            raise FunctionNotImportable(
                f"{target.name} is defined in a script run as __main__, which a worker cannot "
                "import: move the function into a module of your application"
            )
        self._check_declared(target.name)
        options = options_of(target.func)
        retry = self._settings.retry.to_json()
        stored: dict[str, Any] = {k: options.get(k, v) for k, v in retry.items()}
        secret = secret_parameters(target.func)
        if secret:
            stored["redact"] = list(secret)
        job = NewJob(
            id="",
            function=target.name,
            payload="",
            queue=options.get("queue", self._settings.default_queue),
            priority=options.get("priority", 0),
            max_attempts=int(stored["max_attempts"]),
            options=StoredOptions(stored),
        )
        return _Template(job, target)

    def _check_declared(self, name: str) -> None:
        """Refuse in strict mode, else warn once, a function that only this process, by
        passing it, allows to run: a worker process, or this app restarted after a crash,
        would refuse its rows (see `TaskRegistry`).

        :raises FunctionNotImportable: in strict mode.
        """
        if name == self._stand_in_name:
            return
        seen = name in self._declared
        if not seen:  # a bound method's template is made at every call: look once
            self._declared[name] = self._registry.is_declared(name)
        if self._declared[name] or (seen and not self._settings.strict):
            return
        problem = (
            f"{name} is passed to add_task where afterward cannot see it in the application's "
            "code (through a variable, or from a module outside the app's packages), so a "
            "worker process, or this app restarted after a crash, would refuse its tasks"
        )
        remedy = "mark the function with @task or list it in Afterward(tasks=[...])"
        if self._settings.strict:
            raise FunctionNotImportable(f"{problem}: {remedy}")
        log.warning("%s; %s (strict mode refuses it)", problem, remedy)

    def _call_of(
        self, template: _Template, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> NewJob:
        job, target = template
        name = job.function
        if target.args or target.kwargs:  # a functools.partial: its arguments come first
            args, kwargs = target.args + args, {**target.kwargs, **kwargs}
        check_arguments(target.func, name, args, kwargs)
        payload = self._payload(target, name, args, kwargs)
        return NewJob(
            id=task_id,
            function=name,
            payload=payload,
            queue=job.queue,
            priority=job.priority,
            max_attempts=job.max_attempts,
            options=job.options,  # shared by the calls of one function: read-only
        )

    def _payload(
        self, target: Target, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        """The call's arguments as stored: plain JSON decoded by the function's annotations
        when that gives them back exactly, else JSON that carries their types.

        :raises TaskRefused: neither gives them back exactly (the first reason is kept).
        """
        limit = self._settings.max_payload
        try:
            payload = encode_call(name, args, kwargs, limit)
            if not decodes_unchanged(target.func, args, kwargs):
                check_round_trip(target.func, name, args, kwargs, payload)
            return payload
        except ArgumentNotSerializable as plain:
            try:
                payload = encode_typed_call(name, args, kwargs, limit)
                check_round_trip(target.func, name, args, kwargs, payload)
            except ArgumentNotSerializable:
                raise plain from None
            return payload

    def stand_in(self, func: Callable[..., Any], site: CallSite, refusal: TaskRefused) -> NewJob:
        """The row that holds an in-memory call's place in its chain (see `in_memory`),
        after noting the call site (`note_not_durable`)."""
        reason = self.note_not_durable(func, site, refusal)
        kwargs = {"call": _describe(func), "site": str(site), "reason": reason}
        options = {**self._settings.retry.to_json(), "max_attempts": 1, "time_limit": None}
        return NewJob(
            id=new_task_id(),
            function=self._stand_in_name,
            payload=encode_call(self._stand_in_name, (), kwargs),
            queue=self._settings.default_queue,
            max_attempts=1,
            options=StoredOptions(options),
        )

    def note_not_durable(
        self, func: Callable[..., Any], site: CallSite, refusal: TaskRefused
    ) -> str:
        """Note that the call at `site` runs in memory (logged once per site, kept in
        `not_durable`); return the reason, as short as a stand-in row keeps it."""
        reason = _first_sentence(str(refusal))
        record_not_durable(site, reason)  # for every instance: afterward.testing, pytest
        if site not in self.not_durable:
            self.not_durable[site] = reason
            log.warning(
                "%s: add_task(%s) runs in memory after the response, as FastAPI's "
                "BackgroundTasks would, and is not durable: %s (strict mode refuses this "
                "call: Afterward(strict=True) or AFTERWARD_STRICT=1)",
                site,
                _describe(func),
                refusal,
            )
        return reason


def _describe(func: Callable[..., Any]) -> str:
    """A callable named for a person, without its arguments or its object's repr."""
    inner = getattr(func, "func", func) if isinstance(func, functools.partial) else func
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    module = getattr(inner, "__module__", None) or type(inner).__module__
    return f"{module}.{name}"


def _first_sentence(text: str, limit: int = 300) -> str:
    """What a stand-in row keeps of a refusal: its first sentence, at most `limit` long."""
    head = text.split(". ", 1)[0]
    return head if len(head) <= limit else head[: limit - 1] + "…"
