-- Docker-style bridge networks, their endpoints, IP leases and published ports.
-- One lease per address per network and one mapping per (host address, protocol, port) are
-- primary keys; an endpoint holds its network and namespace (RESTRICT), and its leases and
-- port mappings go with it (CASCADE), so no lease or mapping can outlive its endpoint.

CREATE TABLE networks (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    bridge_name         TEXT NOT NULL UNIQUE CHECK (length(bridge_name) BETWEEN 1 AND 15),
    spec                TEXT NOT NULL,                    -- JSON of model::NetworkSpec
    is_default          INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    generation          INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    deleting            INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),
    phase               TEXT NOT NULL DEFAULT 'pending'
                        CHECK (phase IN ('pending', 'ready', 'failed', 'deleting')),
    observed_generation INTEGER NOT NULL DEFAULT 0,
    message             TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- One row per subnet, for overlap checks and the round-robin lease cursor.
CREATE TABLE subnets (
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    cidr       TEXT NOT NULL,
    cursor     TEXT,                                      -- the last address handed out
    PRIMARY KEY (network_id, cidr)
);

CREATE TABLE endpoints (
    id                  TEXT PRIMARY KEY,
    network_id          TEXT NOT NULL REFERENCES networks (id) ON DELETE RESTRICT,
    namespace_id        TEXT NOT NULL REFERENCES namespaces (id) ON DELETE RESTRICT,
    ifname              TEXT NOT NULL CHECK (length(ifname) BETWEEN 1 AND 15),
    host_ifname         TEXT NOT NULL UNIQUE CHECK (length(host_ifname) BETWEEN 1 AND 15),
    spec                TEXT NOT NULL,                    -- JSON of model::EndpointSpec
    generation          INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    deleting            INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),
    phase               TEXT NOT NULL DEFAULT 'pending'
                        CHECK (phase IN ('pending', 'ready', 'failed', 'deleting')),
    observed_generation INTEGER NOT NULL DEFAULT 0,
    message             TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL DEFAULT '{}',       -- JSON: observed MAC
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (network_id, namespace_id),
    UNIQUE (namespace_id, ifname)
);
CREATE INDEX endpoints_namespace ON endpoints (namespace_id);

CREATE TABLE leases (
    network_id  TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    address     TEXT NOT NULL,
    prefix_len  INTEGER NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    PRIMARY KEY (network_id, address)
);
CREATE INDEX leases_endpoint ON leases (endpoint_id);

CREATE TABLE port_mappings (
    endpoint_id    TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    host_ip        TEXT NOT NULL,                          -- '' is every host address
    protocol       TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp', 'sctp')),
    host_port      INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),
    container_port INTEGER NOT NULL CHECK (container_port BETWEEN 1 AND 65535),
    PRIMARY KEY (host_ip, protocol, host_port)
);
CREATE INDEX port_mappings_endpoint ON port_mappings (endpoint_id);
