"""Every error afterward raises on purpose derives from `AfterwardError`.

The tree::

    AfterwardError
    ├── ConfigurationError            bad URL, unknown setting, missing extra
    │   └── InvalidOption (ValueError)  an option of the wrong type or out of range
    ├── TaskRefused (ValueError)      add_task() cannot make the call durable
    │   ├── FunctionNotImportable     lambda, closure, nested or __main__-only function
    │   ├── ArgumentNotSerializable   an argument has no JSON form
    │   │   └── ArgumentNotExact      an argument would come back changed (type or value)
    │   └── PayloadTooLarge           encoded arguments over the size limit
    ├── TaskNotFound (LookupError)    no task has that id
    ├── InvalidTransition             e.g. retrying a task that is still queued
    ├── UnknownFunction               a stored row names a function the app never registered
    ├── TimeLimitExceeded (TimeoutError)  an attempt ran past its time limit
    ├── StoreError                    the store failed; the message names the store
    │   └── SchemaTooNew              the database was migrated by a newer afterward
    └── TaskFailed                    raised by testing.drain() for a task that failed

Each class's docstring is its default message.
"""

from __future__ import annotations

__all__ = [
    "AfterwardError",
    "ArgumentNotExact",
    "ArgumentNotSerializable",
    "ConfigurationError",
    "FunctionNotImportable",
    "InvalidOption",
    "InvalidTransition",
    "PayloadTooLarge",
    "SchemaTooNew",
    "StoreError",
    "TaskFailed",
    "TaskNotFound",
    "TaskRefused",
    "TimeLimitExceeded",
    "UnknownFunction",
]


class AfterwardError(Exception):
    """An afterward error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigurationError(AfterwardError):
    """afterward is not configured correctly."""


class InvalidOption(ConfigurationError, ValueError):
    """An option has the wrong type or is out of range."""


class TaskRefused(AfterwardError, ValueError):
    """This task cannot be stored durably."""


class FunctionNotImportable(TaskRefused):
    """A worker could not import this function: pass a module-level function."""


class ArgumentNotSerializable(TaskRefused):
    """An argument cannot be serialized to JSON."""


class ArgumentNotExact(ArgumentNotSerializable):
    """An argument would not come back from the store as an equal value of the same type."""


class PayloadTooLarge(TaskRefused):
    """The task's arguments are larger than the payload limit."""


class TaskNotFound(AfterwardError, LookupError):
    """No task has this id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"No task by the id of {task_id!r}")
        self.task_id = task_id


class InvalidTransition(AfterwardError):
    """This task is not in a state that allows the operation."""


class UnknownFunction(AfterwardError):
    """The stored task names a function this application does not allow workers to run."""


class TimeLimitExceeded(AfterwardError, TimeoutError):
    """The attempt ran longer than its time limit."""


class StoreError(AfterwardError):
    """The task store failed."""


class SchemaTooNew(StoreError):
    """The store's schema was written by a newer version of afterward: upgrade afterward."""


class TaskFailed(AfterwardError):
    """A task failed."""

    def __init__(self, task_id: str, function: str, error: str) -> None:
        super().__init__(f"task {task_id} ({function}) failed: {error}")
        self.task_id = task_id
        self.function = function
        self.error = error
