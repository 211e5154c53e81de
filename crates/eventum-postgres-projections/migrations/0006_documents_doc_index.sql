-- Field queries (`find`: documents whose field at a JSON pointer equals a value, or whose
-- array there holds it) are containment tests (`doc @> …`), which this index serves.
CREATE INDEX documents_doc ON documents USING gin (doc jsonb_path_ops);
