-- runtime schema 3: a step remembers whether the rollback owes it a compensation, so that a
-- compensation that cannot be found when the run rolls back (a replay that cannot learn
-- it, code that lost it) is an error on the run rather than a step silently left undone.

ALTER TABLE steps ADD COLUMN compensable INTEGER NOT NULL DEFAULT 0;

-- Steps written before: a completed step with a compensation always stored its
-- compensate_input (JSON null included), and a step that got as far as being
-- compensated had one.
UPDATE steps SET compensable = 1
    WHERE compensate_input IS NOT NULL
       OR status IN ('compensating', 'compensated', 'compensation_failed');
