-- The documents of every document read model: a JSON value per (model, key).
CREATE TABLE documents (
    model text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (model, key)
);
