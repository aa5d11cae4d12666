"""Settings: defaults, AFTERWARD_* variables, overrides, and refusals."""

from __future__ import annotations

import pytest

from afterward.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LEASE,
    DEFAULT_QUEUE,
    DEFAULT_URL,
    Settings,
)
from afterward.errors import ConfigurationError, InvalidOption
from afterward.retry import RetryPolicy


def test_empty_environment_gives_the_defaults() -> None:
    # Given no AFTERWARD_* variables
    # When settings are read
    settings = Settings.from_env({})
    # Then they are the defaults
    assert settings == Settings()
    assert settings.url == DEFAULT_URL
    assert settings.execution == "in_app"
    assert settings.default_queue == DEFAULT_QUEUE
    assert settings.lease == DEFAULT_LEASE
    assert settings.concurrency == DEFAULT_CONCURRENCY


def test_variables_are_read_and_parsed() -> None:
    # Given every AFTERWARD_* variable
    environ = {
        "AFTERWARD_URL": "sqlite:////tmp/jobs.db",
        "AFTERWARD_EXECUTION": "workers",
        "AFTERWARD_QUEUE": "mail",
        "AFTERWARD_LEASE": "12.5",
        "AFTERWARD_CONCURRENCY": "3",
    }
    # When settings are read
    settings = Settings.from_env(environ)
    # Then each lands in its setting, numbers as numbers
    assert settings.url == "sqlite:////tmp/jobs.db"
    assert settings.execution == "workers"
    assert settings.default_queue == "mail"
    assert settings.lease == 12.5
    assert isinstance(settings.concurrency, int)
    assert settings.concurrency == 3


def test_unrelated_variables_are_ignored() -> None:
    # Given variables that are not afterward's
    # When settings are read
    settings = Settings.from_env({"DATABASE_URL": "postgres://x", "AFTERWARD_NOPE": "1"})
    # Then they change nothing
    assert settings == Settings()


def test_overrides_win_over_the_environment() -> None:
    # Given variables, and overrides for some of the same settings
    environ = {"AFTERWARD_URL": "sqlite:///env.db", "AFTERWARD_CONCURRENCY": "3"}
    policy = RetryPolicy(max_attempts=2)
    # When settings are read with the overrides
    settings = Settings.from_env(environ, url="sqlite:///code.db", retry=policy)
    # Then the overrides win, and variables not overridden still apply
    assert settings.url == "sqlite:///code.db"
    assert settings.concurrency == 3
    assert settings.retry is policy


def test_os_environ_is_used_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given AFTERWARD_EXECUTION in the process environment
    monkeypatch.setenv("AFTERWARD_EXECUTION", "workers")
    monkeypatch.delenv("AFTERWARD_URL", raising=False)
    # When settings are read without a mapping
    settings = Settings.from_env()
    # Then the process environment is used
    assert settings.execution == "workers"


@pytest.mark.parametrize("value", ["threads", "", "IN_APP"])
def test_bad_execution_is_refused(value: str) -> None:
    # Given an execution mode that does not exist
    # When settings are read
    # Then ConfigurationError names the allowed values and the bad one
    with pytest.raises(ConfigurationError, match="'in_app' or 'workers'") as info:
        Settings.from_env({"AFTERWARD_EXECUTION": value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AFTERWARD_LEASE", "thirty"),
        ("AFTERWARD_LEASE", ""),
        ("AFTERWARD_CONCURRENCY", "eight"),
        ("AFTERWARD_CONCURRENCY", "2.5"),
    ],
)
def test_non_number_is_refused(var: str, value: str) -> None:
    # Given a variable that must be a number but is not
    # When settings are read
    # Then ConfigurationError names the variable and its value
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({var: value})
    assert var in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "environ",
    [{"AFTERWARD_LEASE": "0"}, {"AFTERWARD_LEASE": "-1"}, {"AFTERWARD_CONCURRENCY": "0"}],
)
def test_out_of_range_numbers_are_refused(environ: dict[str, str]) -> None:
    # Given a lease or concurrency no runner can use
    # When settings are read
    # Then ConfigurationError is raised
    with pytest.raises(ConfigurationError, match="must be > 0"):
        Settings.from_env(environ)


def test_unknown_override_is_refused() -> None:
    # Given an override that is not a setting
    # When settings are read
    # Then ConfigurationError says the setting is unknown and names it
    with pytest.raises(ConfigurationError, match="unknown setting") as info:
        Settings.from_env({}, concurency=4)
    assert "concurency" in str(info.value)


def test_settings_are_keyword_only_and_frozen() -> None:
    # Given settings
    settings = Settings(concurrency=2)
    # When one is changed or positional arguments are used
    # Then both are refused
    with pytest.raises(AttributeError):
        settings.concurrency = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        Settings("sqlite:///x.db")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "kwargs", [{"lease": 0}, {"poll_interval": 0}, {"concurrency": 0}, {"execution": "x"}]
)
def test_direct_construction_validates_too(kwargs: dict[str, object]) -> None:
    # Given invalid values passed in code
    # When Settings is built
    # Then ConfigurationError is raised
    with pytest.raises(ConfigurationError):
        Settings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"default_queue": ""}, "queue must be a name"),
        ({"retry": {"max_attempts": 3}}, "retry must be a RetryPolicy"),
        ({"max_payload": "1MB"}, "max_payload must be a whole number"),
        ({"strict": "no"}, "strict must be True or False"),
    ],
)
def test_settings_of_the_wrong_type_are_refused(overrides: dict[str, object], message: str) -> None:
    # Given a setting of the wrong type, When settings are made, Then they refuse it by name
    with pytest.raises(InvalidOption, match=message):
        Settings(**overrides)  # type: ignore[arg-type]
