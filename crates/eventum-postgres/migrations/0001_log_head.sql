-- The single serializing point of the log: the next global position. Appenders take
-- positions with `UPDATE log_head ... RETURNING` inside their transaction, so the row lock
-- orders commits exactly as positions (see docs/ARCHITECTURE.md, "PostgreSQL store").
CREATE TABLE log_head (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    next_position bigint NOT NULL CHECK (next_position >= 0)
);
INSERT INTO log_head (id, next_position) VALUES (true, 0);
