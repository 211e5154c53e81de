-- The inbox: per consumer, the ids of the events it handled (the newest `inbox_ids_max`
-- are kept), written in the handler's transaction. A redelivered event (a broker's
-- at-least-once delivery, a consumer group's redelivery, the same event appended twice)
-- finds its id here and is dropped.
CREATE TABLE consumer_inbox (
    consumer text COLLATE "C" NOT NULL,
    event_id uuid NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (consumer, event_id)
);
