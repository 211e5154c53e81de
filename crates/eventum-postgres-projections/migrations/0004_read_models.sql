-- The document read models and the version of the projection code that wrote them; a
-- projection started with another version empties its model and rebuilds it from 0.
CREATE TABLE read_models (
    model text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
