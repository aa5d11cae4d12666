"""Where a PostgreSQL store lives: its URL, its schema, its LISTEN/NOTIFY channel."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from psycopg import sql

from ...errors import ConfigurationError
from .queries import QUERIES

__all__ = ["Target"]

DEFAULT_SCHEMA = "afterward"
_MAX_IDENTIFIER = 63
"""PostgreSQL's longest name, in bytes (NAMEDATALEN - 1); channel names included."""


@dataclass(frozen=True)
class Target:
    """Where a store lives, parsed from its URL."""

    url: str
    """The URL without its password, for messages."""
    conninfo: str
    """The URL psycopg connects with: ours minus ``schema``."""
    schema: str
    channel: str
    """The LISTEN/NOTIFY channel of the schema's store."""
    lock_key: int
    """The advisory lock key serializing the schema's migrations."""

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse ``postgresql://user:password@host:port/db?schema=name&sslmode=...``.

        :raises ConfigurationError: the schema name is empty or too long.
        """
        parts = urlsplit(url)
        # Split the query by hand: re-encoding it could change what libpq reads.
        items = [item for item in parts.query.split("&") if item]
        ours = [unquote(i.partition("=")[2]) for i in items if _key(i) == "schema"]
        schema = ours[-1] if ours else DEFAULT_SCHEMA
        if not schema or len(schema.encode()) > _MAX_IDENTIFIER:
            raise ConfigurationError(
                f"invalid schema name {schema!r} in the store URL: it must have 1 to "
                f"{_MAX_IDENTIFIER} bytes"
            )
        rest = "&".join(i for i in items if _key(i) != "schema")
        conninfo = urlunsplit(parts._replace(query=rest))
        shown = "&".join(i for i in items if _key(i) != "password")
        userinfo, at, hosts = parts.netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}{at}{hosts}"
        shown_url = urlunsplit(parts._replace(netloc=netloc, query=shown))
        digest = hashlib.sha256(f"afterward:{schema}".encode()).digest()
        channel = f"afterward:{schema}"
        if len(channel.encode()) > _MAX_IDENTIFIER:
            channel = f"afterward:{digest.hex()[:32]}"
        lock_key = int.from_bytes(digest[:8], "big", signed=True)
        return cls(shown_url, conninfo, schema, channel, lock_key)

    def configure_session(self) -> sql.Composed:
        """The statements setting up a connection: unqualified names are this schema's."""
        query = sql.SQL(QUERIES["configure_session"])
        return query.format(schema=sql.Identifier(self.schema))


def _key(item: str) -> str:
    return unquote(item.partition("=")[0])
