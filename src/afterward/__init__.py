"""afterward: FastAPI's BackgroundTasks with the guarantees of a real task queue.

Swap ``from fastapi import BackgroundTasks`` for ``from afterward.fastapi import
BackgroundTasks``: tasks are committed before the response, run after it in order, are
retried on failure, survive crashes, and can run on separate workers.
"""

from ._version import __version__
from .app import Afterward
from .calls.redaction import Secret
from .config import Settings
from .errors import (
    AfterwardError,
    ArgumentNotSerializable,
    ConfigurationError,
    FunctionNotImportable,
    InvalidOption,
    InvalidTransition,
    PayloadTooLarge,
    SchemaTooNew,
    StoreError,
    TaskFailed,
    TaskNotFound,
    TaskRefused,
    TimeLimitExceeded,
    UnknownFunction,
)
from .jobs import Attempt, Job, JobState, Outcome
from .retry import RetryPolicy
from .tasks import TaskOptions, task

__all__ = [
    "Afterward",
    "AfterwardError",
    "ArgumentNotSerializable",
    "Attempt",
    "ConfigurationError",
    "FunctionNotImportable",
    "InvalidOption",
    "InvalidTransition",
    "Job",
    "JobState",
    "Outcome",
    "PayloadTooLarge",
    "RetryPolicy",
    "SchemaTooNew",
    "Secret",
    "Settings",
    "StoreError",
    "TaskFailed",
    "TaskNotFound",
    "TaskOptions",
    "TaskRefused",
    "TimeLimitExceeded",
    "UnknownFunction",
    "__version__",
    "task",
]
