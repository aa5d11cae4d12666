-- The whole PostgreSQL schema at its latest version. Must equal migrations/* applied in order
-- (tests/stores/test_postgres_specific.py checks it). Runs with search_path set to the
-- store's schema, so names are unqualified. Times are seconds since the epoch.

CREATE TABLE afterward_jobs (
    id               TEXT PRIMARY KEY,
    function         TEXT NOT NULL,
    payload          TEXT NOT NULL,
    queue            TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN (
                         'waiting', 'queued', 'scheduled', 'running',
                         'succeeded', 'failed', 'cancelled'
                     )),
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           DOUBLE PRECISION NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    options          JSONB NOT NULL DEFAULT '{}',
    chain_id         TEXT,
    prev_id          TEXT,
    next_id          TEXT,
    unique_key       TEXT,
    lease_owner      TEXT,
    lease_expires_at DOUBLE PRECISION,
    created_at       DOUBLE PRECISION NOT NULL,
    finished_at      DOUBLE PRECISION,
    last_error       TEXT,
    last_outcome     TEXT CHECK (last_outcome IN ('succeeded', 'failed', 'lost', 'released'))
);

CREATE INDEX afterward_jobs_due ON afterward_jobs (priority DESC, run_at, id COLLATE "C")
    WHERE state IN ('queued', 'scheduled');

CREATE INDEX afterward_jobs_running ON afterward_jobs (lease_expires_at)
    WHERE state = 'running';

CREATE UNIQUE INDEX afterward_jobs_unique_key ON afterward_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');

CREATE INDEX afterward_jobs_created ON afterward_jobs (created_at);

CREATE INDEX afterward_jobs_chain ON afterward_jobs (chain_id) WHERE chain_id IS NOT NULL;

CREATE INDEX afterward_jobs_lease_owner ON afterward_jobs (lease_owner)
    WHERE lease_owner IS NOT NULL;

CREATE TABLE afterward_attempts (
    job_id      TEXT NOT NULL,
    number      INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    outcome     TEXT,
    error       TEXT,
    traceback   TEXT,
    PRIMARY KEY (job_id, number)
);

-- Autovacuum at 2 % dead or new rows (PostgreSQL's default is 20 %): see migration 0003.
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

CREATE TABLE afterward_schema_version (
    version INTEGER PRIMARY KEY
);
