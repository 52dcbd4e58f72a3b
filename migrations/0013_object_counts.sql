-- Issue 14: how many rows each kind of object has, kept by triggers in the same transaction
-- as the insert or delete. A create checks its kind's object limit (--max-endpoints, ...)
-- with one key lookup here, where a COUNT(*) read every row of the table (O(N) per Connect
-- at 10,000 endpoints). Rows being deleted still count until their row is gone, as before.

CREATE TABLE object_counts (
    kind TEXT PRIMARY KEY,                                -- the kind's table name
    n    INTEGER NOT NULL CHECK (n >= 0)
) WITHOUT ROWID;

INSERT INTO object_counts (kind, n) SELECT 'namespaces', count(*) FROM namespaces;
INSERT INTO object_counts (kind, n) SELECT 'links', count(*) FROM links;
INSERT INTO object_counts (kind, n) SELECT 'networks', count(*) FROM networks;
INSERT INTO object_counts (kind, n) SELECT 'endpoints', count(*) FROM endpoints;

CREATE TRIGGER namespaces_count_insert AFTER INSERT ON namespaces
BEGIN UPDATE object_counts SET n = n + 1 WHERE kind = 'namespaces'; END;
CREATE TRIGGER namespaces_count_delete AFTER DELETE ON namespaces
BEGIN UPDATE object_counts SET n = n - 1 WHERE kind = 'namespaces'; END;
CREATE TRIGGER links_count_insert AFTER INSERT ON links
BEGIN UPDATE object_counts SET n = n + 1 WHERE kind = 'links'; END;
CREATE TRIGGER links_count_delete AFTER DELETE ON links
BEGIN UPDATE object_counts SET n = n - 1 WHERE kind = 'links'; END;
CREATE TRIGGER networks_count_insert AFTER INSERT ON networks
BEGIN UPDATE object_counts SET n = n + 1 WHERE kind = 'networks'; END;
CREATE TRIGGER networks_count_delete AFTER DELETE ON networks
BEGIN UPDATE object_counts SET n = n - 1 WHERE kind = 'networks'; END;
CREATE TRIGGER endpoints_count_insert AFTER INSERT ON endpoints
BEGIN UPDATE object_counts SET n = n + 1 WHERE kind = 'endpoints'; END;
CREATE TRIGGER endpoints_count_delete AFTER DELETE ON endpoints
BEGIN UPDATE object_counts SET n = n - 1 WHERE kind = 'endpoints'; END;
