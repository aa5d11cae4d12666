-- 0003: autovacuum comes to the store's tables at 2 % dead or new rows, not PostgreSQL's
-- default 20 %. Each task leaves two dead versions of its row and one of its attempt, so
-- a queue of 1,000,000 tasks would otherwise wait for ~200,000 dead rows per pass, and
-- every acquire walks their dead entries in the due-task index meanwhile.

ALTER TABLE afterward_jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE afterward_attempts SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
