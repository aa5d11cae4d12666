"""The error tree: one base class, documented defaults, and the stdlib bases callers catch."""

from __future__ import annotations

import pytest

from afterward import errors
from afterward.errors import (
    AfterwardError,
    StoreError,
    TaskFailed,
    TaskNotFound,
    TaskRefused,
    TimeLimitExceeded,
)

ALL = [getattr(errors, name) for name in errors.__all__]
WITH_DEFAULT_MESSAGE = [cls for cls in ALL if cls not in (TaskNotFound, TaskFailed)]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_derives_from_afterward_error(cls: type[Exception]) -> None:
    # Given a class exported by afterward.errors
    # When its ancestry is checked
    # Then it is an AfterwardError, and an Exception
    assert issubclass(cls, AfterwardError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", WITH_DEFAULT_MESSAGE, ids=lambda c: c.__name__)
def test_default_message_is_the_docstring(cls: type[AfterwardError]) -> None:
    # Given an error class with a docstring
    # When it is raised without a message
    error = cls()
    # Then its message is its docstring, and a given message replaces it
    assert cls.__doc__
    assert str(error) == cls.__doc__.strip()
    assert str(cls("specific")) == "specific"


def test_task_not_found_names_the_id_and_is_a_lookup_error() -> None:
    # Given a missing task id
    # When TaskNotFound is raised for it
    error = TaskNotFound("0190abc")
    # Then the message contains the id, the id is kept, and LookupError catches it
    assert "0190abc" in str(error)
    assert error.task_id == "0190abc"
    with pytest.raises(LookupError):
        raise error


def test_task_failed_names_task_function_and_error() -> None:
    # Given a failed task
    # When TaskFailed is made for it
    error = TaskFailed("t1", "app:send", "ValueError: boom")
    # Then its message and attributes give all three
    assert str(error) == "task t1 (app:send) failed: ValueError: boom"
    assert (error.task_id, error.function, error.error) == ("t1", "app:send", "ValueError: boom")


@pytest.mark.parametrize(
    "cls",
    [
        TaskRefused,
        errors.FunctionNotImportable,
        errors.ArgumentNotSerializable,
        errors.PayloadTooLarge,
    ],
    ids=lambda c: c.__name__,
)
def test_task_refusals_are_value_errors(cls: type[TaskRefused]) -> None:
    # Given a reason add_task() refuses a call
    # When it is raised
    # Then `except ValueError` and `except TaskRefused` both catch it
    assert issubclass(cls, TaskRefused)
    with pytest.raises(ValueError):
        raise cls()


def test_time_limit_exceeded_is_a_timeout_error() -> None:
    # Given an attempt over its time limit
    # When TimeLimitExceeded is raised
    # Then `except TimeoutError` catches it
    with pytest.raises(TimeoutError):
        raise TimeLimitExceeded()


def test_schema_too_new_is_a_store_error() -> None:
    # Given the newer-schema error
    # Then it is caught as a StoreError
    assert issubclass(errors.SchemaTooNew, StoreError)


@pytest.mark.parametrize("name", errors.__all__)
def test_module_docstring_tree_names_every_class(name: str) -> None:
    # Given the tree drawn in the module docstring
    tree = errors.__doc__ or ""
    # When a class name is looked for in it
    # Then it is there, as a whole word at the start of a branch
    assert name in tree.split()


def test_all_lists_every_error_class_of_the_module() -> None:
    # Given the module's classes
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    # Then __all__ lists exactly them
    assert defined == set(errors.__all__)
