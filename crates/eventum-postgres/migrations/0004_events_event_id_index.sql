-- Idempotent retries under `any`/`exists` find an event by its id.
CREATE INDEX events_event_id ON events (event_id);
