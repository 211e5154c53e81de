-- A consumer's checkpoint: the position it handles next. The runner locks the row at the
-- start of every batch and moves it in the same transaction as the handler's writes and
-- the inbox rows, so the read model is never ahead of or behind its checkpoint.
CREATE TABLE consumer_checkpoints (
    consumer text COLLATE "C" PRIMARY KEY,
    position_next bigint NOT NULL CHECK (position_next >= 0),
    events_handled bigint NOT NULL DEFAULT 0 CHECK (events_handled >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
