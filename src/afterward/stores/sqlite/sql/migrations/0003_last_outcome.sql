-- 0003: how each task's last attempt that counted ended (succeeded, failed, lost), written
-- whenever an attempt closes (a hand-back, 'released', does not count and leaves it): the
-- worker finds a task lost with its worker by it, not by the text of its last error.
-- Filled from each task's last such attempt; a task without one whose last error is the
-- text a lost attempt left (afterward.jobs.decide_lost) counts as lost.

ALTER TABLE afterward_jobs ADD COLUMN last_outcome TEXT;

UPDATE afterward_jobs SET last_outcome = coalesce(
    (
        SELECT a.outcome FROM afterward_attempts AS a
        WHERE a.job_id = afterward_jobs.id AND a.outcome IN ('succeeded', 'failed', 'lost')
        ORDER BY a.number DESC LIMIT 1
    ),
    CASE WHEN substr(last_error, 1, 11) = 'WorkerLost:' THEN 'lost' END
)
WHERE attempts > 0 OR last_error IS NOT NULL;
