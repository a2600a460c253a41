-- runtime's PostgreSQL schema 1: the same tables as the SQLite store's, in the schema the
-- URL names (``runtime`` by default). Times are timestamptz (the store writes UTC), JSON
-- documents are json (kept as written: key order, numbers), flags are boolean.
-- runs.rollback_status: the status a run ends with once its rollback is done (NULL means
-- failed). runs.control: an operator's request ('pause', 'cancel') to the worker driving
-- the run. runs.wake_at: the end of a durable ctx.sleep.

CREATE TABLE workers (
    id            text PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    process_start text,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

CREATE TABLE runs (
    id               text PRIMARY KEY,
    workflow         text NOT NULL,
    version          text,
    kind             text NOT NULL,
    idempotency_key  text,
    status           text NOT NULL,
    input            json,
    output           json,
    error            json,
    rollback_status  text,
    control          text,
    wake_at          timestamptz,
    owner_id         text,
    parent_run_id    text,
    available_at     timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    ended_at         timestamptz
);

CREATE UNIQUE INDEX runs_idempotency ON runs (workflow, idempotency_key);
-- The queue and the held runs: partial, so their size follows the work in hand.
CREATE INDEX runs_queue ON runs (workflow, available_at) WHERE status IN ('pending', 'sleeping');
CREATE INDEX runs_held ON runs (available_at) WHERE status IN ('running', 'compensating');
CREATE INDEX runs_owner ON runs (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
-- Listings, newest first, paged with a row-value cursor (created_at, id) < (%s, %s).
CREATE INDEX runs_listing ON runs (created_at, id);
CREATE INDEX runs_by_status ON runs (status, created_at, id);
CREATE INDEX runs_by_workflow ON runs (workflow, created_at, id);
CREATE INDEX runs_by_workflow_status ON runs (workflow, status, created_at, id);
-- Retention: ended runs by status and end time, then id, so a prune's walk resumes after
-- (ended_at, id) by a seek even when many runs ended at the same instant (each retention
-- walk's index ends with the key its cursor holds: PostgreSQL has no stable rowid).
CREATE INDEX runs_ended ON runs (status, ended_at, id) WHERE ended_at IS NOT NULL;

CREATE TABLE steps (
    run_id            text NOT NULL,
    seq               integer NOT NULL,
    name              text NOT NULL,
    status            text NOT NULL,
    attempts          integer NOT NULL,
    output            json,
    compensate_input  json,
    error             json,
    started_at        timestamptz,
    ended_at          timestamptz,
    completed_order   integer,
    compensable       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE events (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    name             text NOT NULL,
    data             json,
    metadata         json,
    idempotency_key  text UNIQUE,
    source_run_id    text,
    occurred_at      timestamptz NOT NULL,
    available_at     timestamptz NOT NULL,
    fanned_out       boolean NOT NULL DEFAULT false
);

CREATE INDEX events_to_fan_out ON events (seq) WHERE NOT fanned_out;
CREATE INDEX events_by_name ON events (name, seq);
CREATE INDEX events_occurred ON events (occurred_at, seq);

-- The subscribers the running services declare: fan-out routes each event to the
-- active ones, whichever process fans it out.
CREATE TABLE subscribers (
    id            text PRIMARY KEY,
    patterns      json NOT NULL,
    max_attempts  integer NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE deliveries (
    id             text PRIMARY KEY,
    event_id       text NOT NULL,
    event_seq      bigint NOT NULL,
    subscriber_id  text NOT NULL,
    status         text NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL,
    available_at   timestamptz NOT NULL,
    owner_id       text,
    error          json,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    UNIQUE (event_id, subscriber_id)
);

CREATE INDEX deliveries_due ON deliveries (subscriber_id, available_at, event_seq)
    WHERE status = 'pending';
CREATE INDEX deliveries_running ON deliveries (owner_id) WHERE status = 'running';
CREATE INDEX deliveries_by_event ON deliveries (event_seq, id);
CREATE INDEX deliveries_by_status ON deliveries (status, event_seq, id);
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id, status, event_seq, id);

-- Events a run's steps staged: published when the run completes, dropped on a rollback.
CREATE TABLE run_events (
    run_id    text NOT NULL,
    step_seq  integer NOT NULL,
    idx       integer NOT NULL,
    name      text NOT NULL,
    data      json,
    metadata  json,
    PRIMARY KEY (run_id, step_seq, idx)
);

CREATE TABLE schedules (
    name             text PRIMARY KEY,
    workflow         text NOT NULL,
    expression       text NOT NULL,
    timezone         text NOT NULL,
    next_fire_at     timestamptz,
    executions       integer NOT NULL DEFAULT 0,
    max_executions   integer,
    overlap          text NOT NULL,
    catchup_window   double precision NOT NULL,
    active           boolean NOT NULL DEFAULT true,
    last_run_id      text,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE schedule_firings (
    schedule     text NOT NULL,
    nominal_at   timestamptz NOT NULL,
    outcome      text NOT NULL,
    run_id       text,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (schedule, nominal_at)
);

CREATE INDEX schedule_firings_nominal ON schedule_firings (nominal_at, schedule);

-- The schedules each worker declares, so a process that starts only deactivates the
-- schedules no live worker declares.
CREATE TABLE worker_schedules (
    worker_id  text NOT NULL,
    schedule   text NOT NULL,
    PRIMARY KEY (worker_id, schedule)
);

-- The subscribers each worker declares: a start deactivates only those no live worker
-- declares.
CREATE TABLE worker_subscribers (
    worker_id      text NOT NULL,
    subscriber_id  text NOT NULL,
    PRIMARY KEY (worker_id, subscriber_id)
);
