-- Named PostgreSQL queries, loaded by afterward.stores.sql_files. Each block starts with
-- "-- name: <name>" and a line describing it. Parameters are psycopg's %(name)s; lists are
-- arrays. Connections run with search_path set to the store's schema, so names are
-- unqualified. {schema} and {channel} are identifiers composed with psycopg.sql.
-- Statements that change several things are one statement with data-modifying CTEs: one
-- round trip, one transaction (autocommit). pg_notify() fires at commit. Task rows are
-- selected column by column, never with *: a migration adding a column must not break the
-- prepared statements of processes still running older code ("cached plan must not change
-- result type").

-- name: now
-- The database's clock, in seconds since the epoch.
SELECT extract(epoch FROM clock_timestamp())::float8 AS now;

-- name: ping
-- Check that a connection still works.
SELECT 1;

-- name: lock_schema
-- Serialize schema creation and upgrades of one store schema across processes.
SELECT pg_advisory_xact_lock(%(key)s::bigint);

-- name: schema_state
-- Whether the store's schema and its version table exist.
SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s) AS has_schema,
       EXISTS (
           SELECT FROM pg_tables
           WHERE schemaname = %(schema)s AND tablename = 'afterward_schema_version'
       ) AS has_version;

-- name: create_schema
-- Create the store's schema.
CREATE SCHEMA {schema};

-- name: configure_session
-- Make the store's schema the only one searched for unqualified names, and have times
-- (DOUBLE PRECISION) sent as text that reads back exactly, whatever the server's default.
-- No bitmap scans: a queue table grows and shrinks faster than its statistics follow, and
-- with statistics from a nearly empty table the planner read every due task through a
-- bitmap scan and sorted them to take 8 (9-13 ms per acquire with 20,000 tasks due, against
-- 1 ms walking the due-task index in order). Every statement here is a key lookup, a walk
-- of an index in its order, or a count.
SET search_path TO {schema};
SET extra_float_digits = 3;
SET enable_bitmapscan = off;

-- name: vacuum_due
-- The store's tables holding many dead row versions that autovacuum will not clean (it is
-- off for the server or for the table), schema-qualified and quoted, ready for VACUUM.
SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname) AS relname
FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = current_schema()
  AND s.relname IN ('afterward_jobs', 'afterward_attempts')
  AND s.n_dead_tup > 10000 + 0.05 * s.n_live_tup
  AND (current_setting('autovacuum') = 'off'
       OR 'autovacuum_enabled=false' = ANY(coalesce(c.reloptions, '{}')))
ORDER BY s.relname;

-- name: vacuum_lock
-- One process at a time vacuums a schema's tables (held by the session, until it ends).
SELECT pg_try_advisory_lock(hashtext(current_schema() || '.afterward_vacuum')) AS locked;

-- name: vacuum_unlock
-- Let another process vacuum again.
SELECT pg_advisory_unlock(hashtext(current_schema() || '.afterward_vacuum'));

-- name: schema_version
-- The latest migration applied.
SELECT coalesce(max(version), 0) AS version FROM afterward_schema_version;

-- name: record_version
-- Note that the schema is at a version.
INSERT INTO afterward_schema_version (version) VALUES (%(version)s);

-- name: listen
-- Subscribe to the store's wake-up channel.
LISTEN {channel};

-- name: notify
-- Wake the workers listening on the store's channel (at commit).
SELECT pg_notify(%(channel)s, '');

-- name: insert_jobs
-- Store many tasks, linking each to the one behind it; a task whose unique_key an unfinished
-- task holds is skipped. Returns the ids stored. Links within the batch come in as next_id
-- (a CTE cannot see rows another CTE inserts); `linked` points earlier tasks at new ones.
WITH new AS (
    SELECT * FROM unnest(
        %(ids)b::text[], %(functions)b::text[], %(payloads)b::text[], %(queues)b::text[],
        %(states)b::text[], %(priorities)b::int[], %(run_ats)b::float8[],
        %(max_attempts)b::int[], %(options)b::text[], %(chain_ids)b::text[],
        %(prev_ids)b::text[], %(next_ids)b::text[], %(unique_keys)b::text[]
    ) WITH ORDINALITY AS new (
        id, function, payload, queue, state, priority, run_at, max_attempts, options,
        chain_id, prev_id, next_id, unique_key, n
    )
), inserted AS (
    INSERT INTO afterward_jobs (
        id, function, payload, queue, state, priority, run_at, max_attempts, options,
        chain_id, prev_id, next_id, unique_key, lease_owner, lease_expires_at, created_at
    )
    SELECT id, function, payload, queue, state, priority, run_at, max_attempts,
           options::jsonb, chain_id, prev_id, next_id, unique_key, %(lease_owner)s::text,
           %(lease_expires_at)s::float8, %(now)s::float8
    FROM new ORDER BY n
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
        DO NOTHING
    RETURNING id
), linked AS (
    UPDATE afterward_jobs AS j SET next_id = new.id FROM new WHERE j.id = new.prev_id
), woken AS (
    -- Tasks reserved for the enqueuing process wake no one: only it may take them.
    SELECT pg_notify(%(channel)s, '') FROM inserted WHERE %(lease_owner)s::text IS NULL LIMIT 1
)
SELECT id, (SELECT count(*) FROM woken) AS woken FROM inserted;

-- name: insert_job
-- insert_jobs for one task outside a chain: one row of values, no arrays to unnest
-- (a quarter less time per one-at-a-time enqueue).
WITH inserted AS (
    INSERT INTO afterward_jobs (
        id, function, payload, queue, state, priority, run_at, max_attempts, options,
        unique_key, lease_owner, lease_expires_at, created_at
    ) VALUES (
        %(id)s, %(function)s, %(payload)s, %(queue)s, %(state)s, %(priority)s, %(run_at)s,
        %(max_attempts)s, %(options)s::jsonb, %(unique_key)s, %(lease_owner)s::text,
        %(lease_expires_at)s::float8, %(now)s::float8
    )
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
        DO NOTHING
    RETURNING id
), woken AS (
    SELECT pg_notify(%(channel)s, '') FROM inserted WHERE %(lease_owner)s::text IS NULL
)
SELECT id, (SELECT count(*) FROM woken) AS woken FROM inserted;

-- name: copy_jobs
-- insert_jobs for a batch without unique keys whose chains lie inside it: rows streamed by
-- COPY (text format), stored in about half the time of an INSERT from unnested arrays. The
-- caller wakes workers (notify) when the tasks are not reserved.
COPY afterward_jobs (
    id, function, payload, queue, state, priority, run_at, max_attempts, options,
    chain_id, prev_id, next_id, lease_owner, lease_expires_at, created_at
) FROM STDIN;

-- name: find_unfinished_by_unique_keys
-- The unfinished tasks holding some unique keys.
SELECT id, unique_key FROM afterward_jobs
WHERE unique_key = ANY(%(keys)s::text[])
  AND state NOT IN ('succeeded', 'failed', 'cancelled');

-- name: acquire_due
-- Take up to %(limit)s due tasks, highest priority and oldest first, and open their attempts.
-- Options come back as text: the tasks of a batch share them, and Python parses each
-- distinct text once (`rows.job_from_row`).
-- SKIP LOCKED: concurrent workers pass over rows another worker is taking.
-- %(relaxed)s: commit without waiting for the WAL flush (the statement is its own
-- transaction). A take lost in a server crash is undone and the task is due again; the
-- outcome's commit, which is flushed, makes the take durable with it.
WITH picked AS (
    SELECT id FROM afterward_jobs
    WHERE state IN ('queued', 'scheduled') AND run_at <= %(now)s
      AND (lease_owner IS NULL OR lease_expires_at < %(now)s)
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
    ORDER BY priority DESC, run_at, id COLLATE "C"
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE afterward_jobs AS j
    SET state = 'running', attempts = j.attempts + 1,
        lease_owner = %(worker)s, lease_expires_at = %(expires)s
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.function, j.payload, j.queue, j.state, j.priority, j.run_at, j.attempts,
        j.max_attempts, j.options::text, j.chain_id, j.prev_id, j.next_id, j.unique_key,
        j.lease_owner, j.lease_expires_at, j.created_at, j.finished_at, j.last_error,
        j.last_outcome
), opened AS (
    INSERT INTO afterward_attempts (job_id, number, worker, started_at)
    SELECT id, attempts, %(worker)s, %(now)s FROM taken
), relaxed AS (
    SELECT CASE WHEN %(relaxed)s THEN set_config('synchronous_commit', 'off', true) END
)
SELECT taken.* FROM taken, relaxed ORDER BY priority DESC, run_at, id COLLATE "C";

-- name: acquire_ids
-- Take up to %(limit)s of the given tasks that are due and free or reserved for this worker.
-- %(relaxed)s as for acquire_due.
-- No SKIP LOCKED: a task reserved for this worker may be locked for a moment by its own
-- lease renewal, and skipping it would hand the request's chain to the queue instead.
WITH picked AS (
    SELECT id FROM afterward_jobs
    WHERE id = ANY(%(ids)s::text[])
      AND state IN ('queued', 'scheduled') AND run_at <= %(now)s
      AND (lease_owner IS NULL OR lease_owner = %(worker)s OR lease_expires_at < %(now)s)
    ORDER BY priority DESC, run_at, id COLLATE "C"
    LIMIT %(limit)s
    FOR UPDATE
), taken AS (
    UPDATE afterward_jobs AS j
    SET state = 'running', attempts = j.attempts + 1,
        lease_owner = %(worker)s, lease_expires_at = %(expires)s
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.function, j.payload, j.queue, j.state, j.priority, j.run_at, j.attempts,
        j.max_attempts, j.options::text, j.chain_id, j.prev_id, j.next_id, j.unique_key,
        j.lease_owner, j.lease_expires_at, j.created_at, j.finished_at, j.last_error,
        j.last_outcome
), opened AS (
    INSERT INTO afterward_attempts (job_id, number, worker, started_at)
    SELECT id, attempts, %(worker)s, %(now)s FROM taken
), relaxed AS (
    SELECT CASE WHEN %(relaxed)s THEN set_config('synchronous_commit', 'off', true) END
)
SELECT taken.* FROM taken, relaxed ORDER BY priority DESC, run_at, id COLLATE "C";

-- name: spoil
-- Fail for good running tasks whose rows cannot be read (%(errors)s says why), each held by
-- its owner in %(owners)s; their attempt ends as %(outcome)s. Returns how many were failed.
WITH spoiled AS (
    UPDATE afterward_jobs AS j
    SET state = 'failed', finished_at = %(now)s, last_error = s.error,
        last_outcome = %(outcome)s, lease_owner = NULL, lease_expires_at = NULL
    FROM unnest(%(ids)s::text[], %(owners)s::text[], %(errors)s::text[]) AS s(id, owner, error)
    WHERE j.id = s.id AND j.state = 'running' AND j.lease_owner = s.owner
    RETURNING j.id, j.attempts, s.error
), closed AS (
    UPDATE afterward_attempts AS a
    SET finished_at = %(now)s, outcome = %(outcome)s, error = spoiled.error
    FROM spoiled WHERE a.job_id = spoiled.id AND a.number = spoiled.attempts
)
SELECT count(*) AS n FROM spoiled;

-- name: spoil_at_limit
-- Fail for good the due tasks whose attempts are at the integer limit: taking one would
-- count one more, which fails the whole acquire statement ("integer out of range").
UPDATE afterward_jobs
SET state = 'failed', finished_at = %(now)s, last_error = %(error)s,
    lease_owner = NULL, lease_expires_at = NULL
WHERE state IN ('queued', 'scheduled') AND attempts = 2147483647
RETURNING id;

-- name: extend_leases
-- Renew the leases (and reservations) a worker still holds. Rows are locked in id order,
-- the order in which `complete` locks a task and then the next of its chain (ids grow
-- along a chain): locking them in the order they lie on disk could deadlock with it.
WITH held AS (
    SELECT id FROM afterward_jobs
    WHERE id = ANY(%(ids)s::text[])
      AND lease_owner = %(worker)s AND lease_expires_at >= %(now)s
      AND state IN ('running', 'queued', 'scheduled', 'waiting')
    ORDER BY id COLLATE "C"
    FOR UPDATE
)
UPDATE afterward_jobs AS j SET lease_expires_at = %(expires)s
FROM held WHERE j.id = held.id
  AND j.lease_owner = %(worker)s AND j.lease_expires_at >= %(now)s
  AND j.state IN ('running', 'queued', 'scheduled', 'waiting')
RETURNING j.id;

-- name: complete
-- Mark tasks succeeded where the worker still holds their current lease (%(ids)s with their
-- %(attempts)s), close their attempts and let the next task of each chain run. Returns a
-- row per task completed. The tasks are locked in id order first, the order `extend_leases`
-- locks in, so the two cannot deadlock. `released` filters on the id alone and decides in
-- SET: a `retry` of the next task that commits while this statement waits for its lock is
-- then seen (the re-checked newer row version is used), where `WHERE state = 'waiting'`
-- would test this statement's older snapshot and leave the task waiting for ever.
WITH wanted AS (
    SELECT * FROM unnest(%(ids)s::text[], %(attempts)s::int[]) AS w(id, attempt)
), locked AS (
    SELECT j.id FROM afterward_jobs AS j JOIN wanted USING (id)
    ORDER BY j.id COLLATE "C"
    FOR UPDATE OF j
), done AS (
    UPDATE afterward_jobs AS j
    SET state = 'succeeded', finished_at = %(now)s, last_outcome = 'succeeded',
        lease_owner = NULL, lease_expires_at = NULL
    FROM wanted, locked
    WHERE j.id = wanted.id AND j.id = locked.id AND j.state = 'running'
      AND j.lease_owner = %(worker)s AND j.attempts = wanted.attempt
      AND j.lease_expires_at >= %(now)s
    RETURNING j.id, j.attempts, j.next_id
), closed AS (
    UPDATE afterward_attempts AS a
    SET finished_at = %(now)s, outcome = 'succeeded'
    FROM done WHERE a.job_id = done.id AND a.number = done.attempts
), released AS (
    UPDATE afterward_jobs AS j
    SET state = CASE WHEN j.state <> 'waiting' THEN j.state
                     WHEN j.run_at > %(now)s THEN 'scheduled' ELSE 'queued' END
    FROM done WHERE j.id = done.next_id
    RETURNING j.state, j.lease_owner, j.lease_expires_at
), woken AS (
    -- A next task still reserved (for a web process's chain) wakes no one.
    SELECT pg_notify(%(channel)s, '') FROM released
    WHERE state <> 'waiting' AND (lease_owner IS NULL OR lease_expires_at < %(now)s) LIMIT 1
)
SELECT done.id, (SELECT count(*) FROM woken) AS woken FROM done;

-- name: fail
-- Record a failed attempt: scheduled for %(retry_at)s (queued when that is not in the
-- future, as after a lost lease), or failed when it is NULL; close the attempt with
-- %(outcome)s. %(live)s requires an unexpired lease (a worker reporting); recovery passes
-- false. Returns a row only if the task was changed.
WITH failed AS (
    UPDATE afterward_jobs
    SET state = CASE WHEN %(retry_at)s::float8 IS NULL THEN 'failed'
                     WHEN %(retry_at)s > %(now)s THEN 'scheduled' ELSE 'queued' END,
        run_at = coalesce(%(retry_at)s, run_at),
        finished_at = CASE WHEN %(retry_at)s IS NULL THEN %(now)s END,
        last_error = %(error)s, last_outcome = %(outcome)s,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = %(id)s AND state = 'running' AND lease_owner = %(worker)s
      AND attempts = %(attempt)s AND (NOT %(live)s OR lease_expires_at >= %(now)s)
    RETURNING id, attempts
), closed AS (
    UPDATE afterward_attempts AS a
    SET finished_at = %(now)s, outcome = %(outcome)s,
        error = %(error)s, traceback = %(traceback)s
    FROM failed WHERE a.job_id = failed.id AND a.number = failed.attempts
), woken AS (
    SELECT pg_notify(%(channel)s, '') FROM failed WHERE %(retry_at)s IS NOT NULL
)
SELECT (SELECT count(*) FROM woken) AS woken FROM failed;

-- name: release
-- Hand a worker's running tasks back without spending an attempt, close those attempts,
-- and forget its reservations among the given tasks it has not started. last_outcome
-- stays: a hand-back does not count (see `Job.last_outcome`).
WITH handed AS (
    UPDATE afterward_jobs
    SET state = 'queued', max_attempts = max_attempts + 1,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY(%(ids)s::text[])
      AND state = 'running' AND lease_owner = %(worker)s AND lease_expires_at >= %(now)s
    RETURNING id, attempts
), closed AS (
    UPDATE afterward_attempts AS a
    SET finished_at = %(now)s, outcome = 'released'
    FROM handed WHERE a.job_id = handed.id AND a.number = handed.attempts
), dropped AS (
    UPDATE afterward_jobs SET lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY(%(ids)s::text[])
      AND lease_owner = %(worker)s AND state IN ('queued', 'scheduled', 'waiting')
    RETURNING id
), woken AS (
    SELECT pg_notify(%(channel)s, '')
    WHERE EXISTS (SELECT FROM handed) OR EXISTS (SELECT FROM dropped)
)
SELECT (SELECT count(*) FROM handed) AS handed, (SELECT count(*) FROM woken) AS woken;

-- name: drop_dead_reservations
-- Forget the reservations held by workers known to be dead.
UPDATE afterward_jobs SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = ANY(%(dead)s::text[])
  AND state IN ('queued', 'scheduled', 'waiting');

-- name: lease_holders
-- Workers holding a lease on a running task or a reservation on a task not started.
SELECT DISTINCT lease_owner FROM afterward_jobs WHERE lease_owner IS NOT NULL;

-- name: lost_leases
-- Running tasks whose lease expired or whose holder is known dead, locked for recovery.
SELECT id, function, payload, queue, state, priority, run_at, attempts, max_attempts, options,
    chain_id, prev_id, next_id, unique_key, lease_owner, lease_expires_at, created_at,
    finished_at, last_error, last_outcome
FROM afterward_jobs
WHERE state = 'running'
  AND (lease_expires_at < %(now)s OR lease_owner = ANY(%(dead)s::text[]))
FOR UPDATE SKIP LOCKED;

-- name: get_job
-- One task, with its attempts (oldest first) as a JSON array.
SELECT j.id, j.function, j.payload, j.queue, j.state, j.priority, j.run_at, j.attempts,
    j.max_attempts, j.options, j.chain_id, j.prev_id, j.next_id, j.unique_key,
    j.lease_owner, j.lease_expires_at, j.created_at, j.finished_at, j.last_error,
    j.last_outcome,
    (
        SELECT coalesce(json_agg(a ORDER BY a.number), '[]'::json)
        FROM afterward_attempts AS a WHERE a.job_id = j.id
    ) AS history
FROM afterward_jobs AS j WHERE j.id = %(id)s;

-- name: lock_job
-- One task, locked until the end of the transaction (cancel, retry).
SELECT id, function, payload, queue, state, priority, run_at, attempts, max_attempts, options,
    chain_id, prev_id, next_id, unique_key, lease_owner, lease_expires_at, created_at,
    finished_at, last_error, last_outcome
FROM afterward_jobs WHERE id = %(id)s FOR UPDATE;

-- name: set_state
-- Move a task from one state to another (cancel, retry and their chains).
UPDATE afterward_jobs
SET state = %(to_state)s, finished_at = %(finished_at)s::float8,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND state = %(from_state)s
RETURNING next_id;

-- name: requeue
-- Give a failed or cancelled task a fresh budget of attempts; queued, or waiting behind its chain.
UPDATE afterward_jobs
SET state = %(to_state)s, run_at = %(now)s, finished_at = NULL,
    max_attempts = attempts + %(budget)s, lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND state IN ('failed', 'cancelled');

-- name: list_jobs
-- Tasks matching a filter, newest first.
SELECT id, function, payload, queue, state, priority, run_at, attempts, max_attempts, options,
    chain_id, prev_id, next_id, unique_key, lease_owner, lease_expires_at, created_at,
    finished_at, last_error, last_outcome
FROM afterward_jobs
WHERE (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(function)s::text IS NULL OR strpos(function, %(function)s) > 0)
  AND (%(chain_id)s::text IS NULL OR chain_id = %(chain_id)s)
  AND (%(id_prefix)s::text IS NULL OR starts_with(id, %(id_prefix)s))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: counts
-- Number of tasks by queue and state.
SELECT queue, state, count(*) AS n FROM afterward_jobs GROUP BY queue, state;

-- name: purge
-- Delete finished tasks in some states, and their attempts; return how many tasks.
WITH gone AS (
    DELETE FROM afterward_jobs
    WHERE state = ANY(%(states)s::text[]) AND finished_at < %(before)s
    RETURNING id
), gone_attempts AS (
    DELETE FROM afterward_attempts AS a USING gone WHERE a.job_id = gone.id
)
SELECT count(*) AS n FROM gone;

-- name: push_search_path
-- For the rest of the caller's transaction, resolve unqualified names in our schema first;
-- returns the caller's search_path so it can be put back.
SELECT current_setting('search_path') AS previous,
       set_config('search_path', %(schema)s || ', ' || current_setting('search_path'), true);

-- name: pop_search_path
-- Put the caller's search_path back (for the rest of its transaction).
SELECT set_config('search_path', %(previous)s, true);
