-- Every event, keyed by its gap-free global position. Data and metadata are the exact JSON
-- bytes the caller sent (bytea, so nothing is re-formatted). Names compare bytewise
-- (COLLATE "C"): only equality matters, and locale-aware comparison costs index time.
CREATE TABLE events (
    position bigint PRIMARY KEY,
    stream text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    category text COLLATE "C" NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    data bytea NOT NULL,
    metadata bytea NOT NULL,
    correlation_id uuid NOT NULL,
    causation_id uuid NOT NULL,
    recorded_at_us bigint NOT NULL,
    UNIQUE (stream, version)
);
