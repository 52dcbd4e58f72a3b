-- Client request ids (AIP-155): a retried Create or Connect with the same id returns what the
-- first call made instead of making another. Written in the same transaction as the object.
CREATE TABLE requests (
    request_id  TEXT PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 128),
    method      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,                           -- of the request body, less the id
    object_id   TEXT NOT NULL,                           -- uid of what it made
    created_at  INTEGER NOT NULL
);
CREATE INDEX requests_created ON requests (created_at);
