-- runtime schema 6: what retention (runtime prune, the service's pruner) seeks by.
-- runs_ended: ended runs by status and end time. Partial, so a run's row enters it
-- once, when it ends (and leaves it on a retry); the statuses a run passes through
-- while it is driven never touch it.
-- events_occurred: events by age, written once when the event is stored (fan-out
-- and deliveries never update it).
-- schedule_firings_nominal: firings by nominal time, across schedules.

CREATE INDEX runs_ended ON runs (status, ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX events_occurred ON events (occurred_at);
CREATE INDEX schedule_firings_nominal ON schedule_firings (nominal_at);
