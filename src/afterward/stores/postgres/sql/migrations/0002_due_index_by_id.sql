-- 0002: the due-task index also orders by id, as acquiring does. Without it, tasks
-- enqueued together (one run_at) were sorted on every acquire: a 500-task bulk enqueue
-- made each acquire read 500 index entries (and their dead versions) to take 8.

DROP INDEX afterward_jobs_due;
CREATE INDEX afterward_jobs_due ON afterward_jobs (priority DESC, run_at, id COLLATE "C")
    WHERE state IN ('queued', 'scheduled');
