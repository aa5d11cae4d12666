"""The PostgreSQL store: ``postgresql://user@host:5432/db?schema=name``, for many machines.

`store` holds the store; `connections` its pools and opening; `acquire` the acquire
statement and the completions sent with it; `admin` inspection and purging; `writes`
the writes that need Python between statements; `transaction` enqueueing inside the
caller's transaction; `target` the URL, schema and channel; `migrate` the schema
migrations; `listen` the LISTEN connection; `vacuum` the store's own vacuuming;
`queries` the named queries of ``sql/queries.sql``.
"""

from __future__ import annotations

from .store import PostgresStore

__all__ = ["PostgresStore"]
