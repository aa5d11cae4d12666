-- 0004: how each task's last attempt that counted ended (succeeded, failed, lost), written
-- whenever an attempt closes (a hand-back, 'released', does not count and leaves it): the
-- worker finds a task lost with its worker by it, not by the text of its last error.
-- Filled from each task's last such attempt; a task without one whose last error is the
-- text a lost attempt left (afterward.jobs.decide_lost) counts as lost. Tasks with neither
-- are not rewritten. Task rows are selected column by column (queries.sql): processes still
-- running older code keep working, and leave the column as it was when they close attempts.

ALTER TABLE afterward_jobs ADD COLUMN last_outcome TEXT
    CHECK (last_outcome IN ('succeeded', 'failed', 'lost', 'released'));

UPDATE afterward_jobs AS j SET last_outcome = last.outcome
FROM (
    SELECT DISTINCT ON (job_id) job_id, outcome FROM afterward_attempts
    WHERE outcome IN ('succeeded', 'failed', 'lost')
    ORDER BY job_id, number DESC
) AS last
WHERE j.id = last.job_id;

UPDATE afterward_jobs SET last_outcome = 'lost'
WHERE last_outcome IS NULL AND starts_with(last_error, 'WorkerLost:');
