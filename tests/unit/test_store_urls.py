"""Store URLs in messages never show a password; SQLite URLs that would not be durable, or
whose parameters would be ignored, are refused."""

from __future__ import annotations

import pytest

from afterward.errors import AfterwardError, ConfigurationError
from afterward.stores import store_from_url
from afterward.stores.redis.target import parse_redis_url
from afterward.stores.sqlite.connection import path_from_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:hunter2@db:5432/app", "postgresql://ann:***@db:5432/app"),
        ("redis://:hunter2@cache:6379/0?prefix=x", "redis://:***@cache:6379/0?prefix=x"),
        ("mysql://ann:p%40ss@db/app?x=1#f", "mysql://ann:***@db/app?x=1#f"),
        ("rediss://ann:a@b@host/0", "rediss://ann:***@host/0"),
        (
            "postgresql:///app?host=/tmp&password=hunter2",
            "postgresql:///app?host=/tmp&password=***",
        ),
        ("redis://host/0?sslpassword=hunter2&prefix=p", "redis://host/0?sslpassword=***&prefix=p"),
        ("ann:hunter2@db/app", "ann:***@db/app"),
        ("postgresql://ann@db/app", "postgresql://ann@db/app"),
        ("sqlite:///data/afterward.db", "sqlite:///data/afterward.db"),
        ("", ""),
        ("http://[::1", "http://[::1"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    from afterward.stores.urls import redact_url

    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "mysql://ann:hunter2@db/app",
        "postgresq://ann:hunter2@db/app",
        "ann:hunter2@db/app",
        "redis://ann:hunter2@cache/0?prefix=",
        "redis://cache/0?password=hunter2&prefix=",
        "sqlite://ann:hunter2@host/x.db",
    ],
)
def test_errors_naming_a_url_hide_its_password(url: str) -> None:
    # Given a URL with a password that cannot be used, When a store is made from it
    with pytest.raises(AfterwardError) as raised:
        if url.startswith("redis"):
            parse_redis_url(url)
        elif url.startswith("sqlite"):
            path_from_url(url)
        else:
            store_from_url(url)
    # Then the message shows the URL without its password
    assert "hunter2" not in str(raised.value)
    assert "***" in str(raised.value)


def test_sqlite_in_memory_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match=r"not durable.*sqlite:///afterward\.db"):
        store_from_url("sqlite:///:memory:")


def test_sqlite_query_parameters_are_refused_not_made_a_file_name() -> None:
    with pytest.raises(ConfigurationError, match=r"query parameters are not supported.*x\.db"):
        store_from_url("sqlite:///x.db?synchronous=OFF")
    # while paths are read as before
    assert path_from_url("sqlite:///relative.db") == "relative.db"
    assert path_from_url("sqlite:////abs/x.db") == "/abs/x.db"
    assert path_from_url("sqlite:///") == "afterward.db"
