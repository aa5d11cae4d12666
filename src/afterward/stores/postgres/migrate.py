"""The PostgreSQL store's schema migrations: create or upgrade a schema, one process at a time."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from ...errors import SchemaTooNew, StoreError
from ..sql_files import load_migrations, load_schema
from .queries import QUERIES
from .target import Target

__all__ = ["migrate"]

log = logging.getLogger("afterward.stores.postgres")


async def migrate(
    conn: psycopg.AsyncConnection[TupleRow], target: Target, *, create: bool = True
) -> None:
    """Create or upgrade `target`'s schema, in one transaction, one process at a time.

    :param create: False: a schema that does not exist, or holds no afterward store, is
        not created; `StoreError` says so.
    :raises SchemaTooNew: the schema is newer than this code.
    :raises StoreError: no store there, and `create` is False.
    """
    migrations = load_migrations("afterward.stores.postgres")
    latest = migrations[-1].version
    async with conn.transaction():
        await conn.execute(QUERIES["lock_schema"], {"key": target.lock_key})
        cur = await conn.execute(QUERIES["schema_state"], {"schema": target.schema})
        has_schema, has_version = await cur.fetchone() or (False, False)
        if not create and not has_version:
            what = "holds no afterward tables" if has_schema else "does not exist"
            raise StoreError(f"no afterward store at {target.url}: schema {target.schema!r} {what}")
        if not has_schema:
            statement = sql.SQL(QUERIES["create_schema"])
            await conn.execute(statement.format(schema=sql.Identifier(target.schema)))
        await conn.execute(target.configure_session())
        version = 0
        if has_version:
            cur = await conn.execute(QUERIES["schema_version"])
            version = int((await cur.fetchone() or (0,))[0])
        if version > latest:
            raise SchemaTooNew(
                f"the PostgreSQL store {target.url} has schema version {version}, newer than "
                f"this afterward's {latest}: upgrade afterward"
            )
        if version == latest:
            return
        if version == 0:
            await conn.execute(load_schema("afterward.stores.postgres"))
        else:
            for migration in migrations:
                if migration.version > version:
                    await conn.execute(migration.sql)
        await conn.execute(QUERIES["record_version"], {"version": latest})
        log.info("PostgreSQL store %s: schema at version %d", target.url, latest)
