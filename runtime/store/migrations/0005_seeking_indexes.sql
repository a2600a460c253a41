-- runtime schema 5: every query on a hot or periodic path seeks, at any size of history.
--
-- SQLite uses a partial index only when the query's WHERE clause contains the index's
-- predicate literally, so the queries spell these predicates exactly as written here
-- (and name the index with INDEXED BY, so a query that can no longer use it fails
-- instead of quietly scanning every run ever stored). The partial indexes hold live
-- rows only (queued, held, pending, running): their size follows the work in hand,
-- not the history.

DROP INDEX runs_active;
CREATE INDEX runs_queue ON runs (workflow, available_at)
    WHERE status IN ('pending', 'sleeping');
CREATE INDEX runs_held ON runs (available_at) WHERE status IN ('running', 'compensating');
CREATE INDEX runs_owner ON runs (owner_id) WHERE owner_id IS NOT NULL;

-- Listings, newest first, paged with a row-value cursor (created_at, id) < (?, ?).
CREATE INDEX runs_by_status ON runs (status, created_at, id);
CREATE INDEX runs_by_workflow ON runs (workflow, created_at, id);
CREATE INDEX runs_by_workflow_status ON runs (workflow, status, created_at, id);

DROP INDEX deliveries_due;
DROP INDEX deliveries_dead;
DROP INDEX deliveries_by_event;
CREATE INDEX deliveries_due ON deliveries (subscriber_id, available_at, event_seq)
    WHERE status = 'pending';
CREATE INDEX deliveries_running ON deliveries (owner_id) WHERE status = 'running';
CREATE INDEX deliveries_by_event ON deliveries (event_seq, id);
CREATE INDEX deliveries_by_status ON deliveries (status, event_seq, id);
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id, status, event_seq, id);

-- Steps clustered by (run_id, seq): one B-tree instead of a table and its key index,
-- so a step's checkpoint writes one page, not two.
CREATE TABLE steps_clustered (
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
    compensable       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
INSERT INTO steps_clustered (run_id, seq, name, status, attempts, output, compensate_input,
    error, started_at, ended_at, completed_order, compensable)
    SELECT run_id, seq, name, status, attempts, output, compensate_input, error, started_at,
           ended_at, completed_order, compensable FROM steps;
DROP TABLE steps;
ALTER TABLE steps_clustered RENAME TO steps;
