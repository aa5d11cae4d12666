-- Named SQLite queries, loaded by afterward.stores.sql_files. Each block starts with
-- "-- name: <name>" and a line describing it. Lists are passed as JSON arrays (json_each).

-- name: insert_job
-- Store one task.
INSERT INTO afterward_jobs (
    id, function, payload, queue, state, priority, run_at, max_attempts, options,
    chain_id, prev_id, unique_key, lease_owner, lease_expires_at, created_at
) VALUES (
    :id, :function, :payload, :queue, :state, :priority, :run_at, :max_attempts, :options,
    :chain_id, :prev_id, :unique_key, :lease_owner, :lease_expires_at, :now
);

-- name: link_next
-- Point a task at the task behind it in its chain.
UPDATE afterward_jobs SET next_id = :next_id WHERE id = :id;

-- name: find_unfinished_by_unique_key
-- The unfinished task holding a unique key, if any.
SELECT id FROM afterward_jobs
WHERE unique_key = :unique_key AND state NOT IN ('succeeded', 'failed', 'cancelled');

-- name: acquire_due
-- Take up to :limit due tasks, highest priority and oldest first.
UPDATE afterward_jobs
SET state = 'running', attempts = attempts + 1,
    lease_owner = :worker, lease_expires_at = :expires
WHERE id IN (
    SELECT id FROM afterward_jobs
    WHERE state IN ('queued', 'scheduled') AND run_at <= :now
      AND (lease_owner IS NULL OR lease_expires_at < :now)
      AND (:any_queue OR queue IN (SELECT value FROM json_each(:queues)))
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING *;

-- name: acquire_ids
-- Take up to :limit of the given tasks that are due and free or reserved for this worker.
UPDATE afterward_jobs
SET state = 'running', attempts = attempts + 1,
    lease_owner = :worker, lease_expires_at = :expires
WHERE id IN (
    SELECT id FROM afterward_jobs
    WHERE id IN (SELECT value FROM json_each(:ids))
      AND state IN ('queued', 'scheduled') AND run_at <= :now
      AND (lease_owner IS NULL OR lease_owner = :worker OR lease_expires_at < :now)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING *;

-- name: open_attempt
-- Record the start of an attempt.
INSERT INTO afterward_attempts (job_id, number, worker, started_at)
VALUES (:job_id, :number, :worker, :now);

-- name: close_attempt
-- Record how an attempt ended.
UPDATE afterward_attempts
SET finished_at = :now, outcome = :outcome, error = :error, traceback = :traceback
WHERE job_id = :job_id AND number = :number;

-- name: spoil_job
-- Fail for good a running task whose row cannot be read (:error says why); its attempt ends
-- as :outcome. The id and owner are cast: a row whose id is not UTF-8 is found by its bytes.
UPDATE afterward_jobs
SET state = 'failed', finished_at = :now, last_error = :error, last_outcome = :outcome,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = CAST(:id AS TEXT) AND state = 'running' AND lease_owner = CAST(:owner AS TEXT);

-- name: spoil_attempt
-- Close the attempt of a task failed by spoil_job (opened under the id as read: with U+FFFD
-- for bytes that are not UTF-8).
UPDATE afterward_attempts
SET finished_at = :now, outcome = :outcome, error = :error
WHERE job_id = :shown AND number = :number;

-- name: extend_leases
-- Renew the leases (and reservations) a worker still holds.
UPDATE afterward_jobs SET lease_expires_at = :expires
WHERE id IN (SELECT value FROM json_each(:ids))
  AND lease_owner = :worker AND lease_expires_at >= :now
  AND state IN ('running', 'queued', 'scheduled', 'waiting')
RETURNING id;

-- name: complete
-- Mark a task succeeded if the worker still holds its current lease.
UPDATE afterward_jobs
SET state = 'succeeded', finished_at = :now, last_outcome = 'succeeded',
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_owner = :worker AND attempts = :attempt
  AND lease_expires_at >= :now
RETURNING next_id;

-- name: release_next
-- Let the next task of a chain run.
UPDATE afterward_jobs
SET state = CASE WHEN run_at > :now THEN 'scheduled' ELSE 'queued' END
WHERE id = :id AND state = 'waiting';

-- name: fail
-- Record a failed attempt: scheduled for :retry_at (queued when that is not in the future,
-- as after a lost lease), or failed when it is NULL; it ended as :outcome (failed, lost).
-- :live requires an unexpired lease (a worker reporting); recovery passes 0.
UPDATE afterward_jobs
SET state = CASE WHEN :retry_at IS NULL THEN 'failed'
                 WHEN :retry_at > :now THEN 'scheduled' ELSE 'queued' END,
    run_at = COALESCE(:retry_at, run_at),
    finished_at = CASE WHEN :retry_at IS NULL THEN :now END,
    last_error = :error, last_outcome = :outcome,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_owner = :worker AND attempts = :attempt
  AND (NOT :live OR lease_expires_at >= :now)
RETURNING id;

-- name: release_running
-- Hand a worker's running tasks back without spending an attempt (last_outcome stays: a
-- hand-back does not count, see `Job.last_outcome`).
UPDATE afterward_jobs
SET state = 'queued', max_attempts = max_attempts + 1,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state = 'running' AND lease_owner = :worker AND lease_expires_at >= :now
RETURNING id, attempts;

-- name: drop_reservations
-- Forget a worker's reservations on the given tasks it has not started.
UPDATE afterward_jobs SET lease_owner = NULL, lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids))
  AND lease_owner = :worker AND state IN ('queued', 'scheduled', 'waiting');

-- name: drop_dead_reservations
-- Forget the reservations held by workers known to be dead.
UPDATE afterward_jobs SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner IN (SELECT value FROM json_each(:dead))
  AND state IN ('queued', 'scheduled', 'waiting');

-- name: lease_holders
-- Workers holding a lease on a running task or a reservation on a task not started.
SELECT DISTINCT lease_owner FROM afterward_jobs WHERE lease_owner IS NOT NULL;

-- name: lost_leases
-- Running tasks whose lease expired or whose holder is known dead.
SELECT * FROM afterward_jobs
WHERE state = 'running'
  AND (lease_expires_at < :now OR lease_owner IN (SELECT value FROM json_each(:dead)));

-- name: get_job
-- One task.
SELECT * FROM afterward_jobs WHERE id = :id;

-- name: get_attempts
-- A task's attempts, oldest first.
SELECT * FROM afterward_attempts WHERE job_id = :id ORDER BY number;

-- name: set_state
-- Move a task from one state to another (cancel, retry and their chains).
UPDATE afterward_jobs
SET state = :to_state, finished_at = :finished_at,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND state = :from_state
RETURNING next_id;

-- name: requeue
-- Give a failed or cancelled task a fresh budget of attempts; queued, or waiting behind its chain.
UPDATE afterward_jobs
SET state = :to_state, run_at = :now, finished_at = NULL,
    max_attempts = attempts + :budget, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND state IN ('failed', 'cancelled');

-- name: list_jobs
-- Tasks matching a filter, newest first.
SELECT * FROM afterward_jobs
WHERE (:any_state OR state IN (SELECT value FROM json_each(:states)))
  AND (:queue IS NULL OR queue = :queue)
  AND (:function IS NULL OR instr(function, :function) > 0)
  AND (:chain_id IS NULL OR chain_id = :chain_id)
  AND (:id_prefix IS NULL OR substr(id, 1, length(:id_prefix)) = :id_prefix)
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: counts
-- Number of tasks by queue and state.
SELECT queue, state, count(*) AS n FROM afterward_jobs GROUP BY queue, state;

-- name: purge_attempts
-- Delete the attempts of finished tasks being purged.
DELETE FROM afterward_attempts WHERE job_id IN (
    SELECT id FROM afterward_jobs
    WHERE state IN (SELECT value FROM json_each(:states)) AND finished_at < :before
);

-- name: purge_jobs
-- Delete finished tasks.
DELETE FROM afterward_jobs
WHERE state IN (SELECT value FROM json_each(:states)) AND finished_at < :before;
