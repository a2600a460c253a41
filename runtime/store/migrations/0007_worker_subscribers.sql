-- runtime schema 7: the subscribers each worker declares, as worker_schedules does for
-- schedules: a process that starts deactivates only the subscribers no live worker
-- declares (DESIGN 5: during a rolling deploy an old process keeps receiving the events
-- of a subscriber the new version dropped, until it stops). Rows of workers that are
-- gone are ignored and cleared at the next declaration.

CREATE TABLE worker_subscribers (
    worker_id      TEXT NOT NULL,
    subscriber_id  TEXT NOT NULL,
    PRIMARY KEY (worker_id, subscriber_id)
);
