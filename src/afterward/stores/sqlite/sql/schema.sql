-- The whole SQLite schema at its latest version. Must equal migrations/* applied in order
-- (tests/stores/test_migrations.py checks it).

CREATE TABLE afterward_jobs (
    id               TEXT PRIMARY KEY,
    function         TEXT NOT NULL,
    payload          TEXT NOT NULL,
    queue            TEXT NOT NULL,
    state            TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           REAL NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    options          TEXT NOT NULL DEFAULT '{}',
    chain_id         TEXT,
    prev_id          TEXT,
    next_id          TEXT,
    unique_key       TEXT,
    lease_owner      TEXT,
    lease_expires_at REAL,
    created_at       REAL NOT NULL,
    finished_at      REAL,
    last_error       TEXT,
    last_outcome     TEXT
);

CREATE INDEX afterward_jobs_due ON afterward_jobs (priority DESC, run_at, id)
    WHERE state IN ('queued', 'scheduled');

CREATE INDEX afterward_jobs_running ON afterward_jobs (lease_expires_at)
    WHERE state = 'running';

CREATE UNIQUE INDEX afterward_jobs_unique_key ON afterward_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');

CREATE INDEX afterward_jobs_created ON afterward_jobs (created_at);

CREATE INDEX afterward_jobs_chain ON afterward_jobs (chain_id) WHERE chain_id IS NOT NULL;

CREATE TABLE afterward_attempts (
    job_id      TEXT NOT NULL,
    number      INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT,
    error       TEXT,
    traceback   TEXT,
    PRIMARY KEY (job_id, number)
);
