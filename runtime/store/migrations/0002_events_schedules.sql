-- runtime schema 2: the durable event bus (events, deliveries, events staged by runs)
-- and the scheduler (schedules, firings).

CREATE TABLE events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    data             TEXT,
    metadata         TEXT,
    idempotency_key  TEXT UNIQUE,
    source_run_id    TEXT,
    occurred_at      TEXT NOT NULL,
    available_at     TEXT NOT NULL,
    fanned_out       INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX events_to_fan_out ON events (seq) WHERE fanned_out = 0;
CREATE INDEX events_by_name ON events (name, seq);

-- The subscribers the running services declare: fan-out routes each event to the
-- active ones, whichever process fans it out (a web app with no subscribers of its
-- own, or an old process during a rolling deploy, routes to the new subscribers too).
CREATE TABLE subscribers (
    id            TEXT PRIMARY KEY,
    patterns      TEXT NOT NULL,
    max_attempts  INTEGER NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    updated_at    TEXT NOT NULL
);

CREATE TABLE deliveries (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL,
    event_seq      INTEGER NOT NULL,
    subscriber_id  TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL,
    available_at   TEXT NOT NULL,
    owner_id       TEXT,
    error          TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    finished_at    TEXT,
    UNIQUE (event_id, subscriber_id)
);

CREATE INDEX deliveries_due ON deliveries (status, available_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX deliveries_dead ON deliveries (subscriber_id, event_seq) WHERE status = 'dead';
CREATE INDEX deliveries_by_event ON deliveries (event_seq);

CREATE TABLE run_events (
    run_id    TEXT NOT NULL,
    step_seq  INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    data      TEXT,
    metadata  TEXT,
    PRIMARY KEY (run_id, step_seq, idx)
);

CREATE TABLE schedules (
    name             TEXT PRIMARY KEY,
    workflow         TEXT NOT NULL,
    expression       TEXT NOT NULL,
    timezone         TEXT NOT NULL,
    next_fire_at     TEXT,
    executions       INTEGER NOT NULL DEFAULT 0,
    max_executions   INTEGER,
    overlap          TEXT NOT NULL,
    catchup_window   REAL NOT NULL,
    active           INTEGER NOT NULL DEFAULT 1,
    last_run_id      TEXT,
    updated_at       TEXT NOT NULL
);

CREATE TABLE schedule_firings (
    schedule     TEXT NOT NULL,
    nominal_at   TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    run_id       TEXT,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (schedule, nominal_at)
);
