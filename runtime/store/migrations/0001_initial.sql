-- runtime schema 1: runs, steps, workers. Portable SQL (SQLite and PostgreSQL).
-- Times are ISO 8601 UTC text; JSON values are text.
-- runs.rollback_status: the status a run ends with once its rollback is done
-- (NULL means failed); canceled for a cancel, or a child rolled back by its parent.
-- runs.control: an operator's request ('pause', 'cancel') to the worker driving the
-- run, obeyed after its current step. runs.wake_at: the end of a durable ctx.sleep.

CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    process_start TEXT,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    workflow         TEXT NOT NULL,
    version          TEXT,
    kind             TEXT NOT NULL,
    idempotency_key  TEXT,
    status           TEXT NOT NULL,
    input            TEXT,
    output           TEXT,
    error            TEXT,
    rollback_status  TEXT,
    control          TEXT,
    wake_at          TEXT,
    owner_id         TEXT,
    parent_run_id    TEXT,
    available_at     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    ended_at         TEXT
);

CREATE UNIQUE INDEX runs_idempotency ON runs (workflow, idempotency_key);
CREATE INDEX runs_active ON runs (status, available_at)
    WHERE status IN ('pending', 'running', 'sleeping', 'paused', 'compensating');
CREATE INDEX runs_listing ON runs (created_at, id);
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

CREATE TABLE steps (
    run_id            TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    name              TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    output            TEXT,
    compensate_input  TEXT,
    error             TEXT,
    started_at        TEXT,
    ended_at          TEXT,
    completed_order   INTEGER,
    PRIMARY KEY (run_id, seq)
);
