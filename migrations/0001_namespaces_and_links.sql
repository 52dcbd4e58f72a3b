-- Desired state of namespaces and links, with the status the reconciler observed.
-- Invariants live in constraints: unique names, one interface name per namespace (across both
-- ends of every link), and no namespace deleted while a link still lives in it.

CREATE TABLE namespaces (
    id                  TEXT PRIMARY KEY,                 -- opaque uid, never reused
    name                TEXT NOT NULL UNIQUE,
    labels              TEXT NOT NULL DEFAULT '{}',       -- JSON object
    adopted_path        TEXT,                             -- NULL: weft creates <netns_dir>/<name>
    generation          INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    deleting            INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),
    phase               TEXT NOT NULL DEFAULT 'pending'
                        CHECK (phase IN ('pending', 'ready', 'failed', 'deleting')),
    observed_generation INTEGER NOT NULL DEFAULT 0,
    message             TEXT NOT NULL DEFAULT '',
    status_path         TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,                 -- unix milliseconds
    updated_at          INTEGER NOT NULL
);

CREATE TABLE links (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('veth', 'bridge')),
    spec                TEXT NOT NULL,                    -- JSON of model::LinkSpec
    generation          INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    deleting            INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),
    phase               TEXT NOT NULL DEFAULT 'pending'
                        CHECK (phase IN ('pending', 'ready', 'failed', 'deleting')),
    observed_generation INTEGER NOT NULL DEFAULT 0,
    message             TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL DEFAULT '{}',       -- JSON: observed index and MAC per end
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- One row per interface of a link (one for a bridge, two for a veth). `ns_key` is the
-- namespace id or '' for the host, so the host's names are unique too (NULLs would not be).
CREATE TABLE link_ifaces (
    link_id      TEXT NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    end_index    INTEGER NOT NULL CHECK (end_index IN (0, 1)),
    namespace_id TEXT REFERENCES namespaces (id) ON DELETE RESTRICT,
    ns_key       TEXT NOT NULL GENERATED ALWAYS AS (IFNULL(namespace_id, '')) VIRTUAL,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 15),
    PRIMARY KEY (link_id, end_index)
);
CREATE UNIQUE INDEX link_ifaces_name ON link_ifaces (ns_key, name);
CREATE INDEX link_ifaces_namespace ON link_ifaces (namespace_id);
