-- runtime schema 4: the schedules each worker declares, so a process that starts only
-- deactivates the schedules no live worker declares (DESIGN 5: a start never turns off
-- what another live process still runs). Rows of workers that are gone are ignored and
-- cleared at the next reconciliation.

CREATE TABLE worker_schedules (
    worker_id  TEXT NOT NULL,
    schedule   TEXT NOT NULL,
    PRIMARY KEY (worker_id, schedule)
);
