-- One row per stream: its last version (NULL before the first event), the soft-delete flag
-- and the retention metadata from its `$${stream}` metadata stream. Appenders lock the row
-- (`SELECT ... FOR UPDATE`) to check the expected version.
CREATE TABLE streams (
    name text COLLATE "C" PRIMARY KEY,
    last_version bigint,
    deleted boolean NOT NULL DEFAULT false,
    max_count bigint,
    max_age_s bigint
);
