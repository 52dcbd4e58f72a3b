-- Each endpoint's MAC is part of its desired state (issue 10, item 7): a re-created inside
-- interface gets the same MAC back, so its neighbours' ARP/ND entries stay right. The address
-- is chosen at connect time (the client's mac_address, or one derived from the IPv4 lease as
-- Docker does, 02:42:<address>, or from the IPv6 lease) and never collides within a network:
-- the unique index guards what the connect transaction checks.
--
-- Rows from before keep the MAC they have: the one the client asked for, else the one weft
-- last observed on the interface. If two rows of a network would share one (a client asked
-- twice for the same MAC), only the oldest keeps it. Rows left NULL get one derived from
-- their lease at their next reconcile (Store::assign_endpoint_mac).

ALTER TABLE endpoints ADD COLUMN mac TEXT;

UPDATE endpoints SET mac = coalesce(json_extract(spec, '$.mac'), nullif(json_extract(status, '$.mac'), ''));

UPDATE endpoints SET mac = NULL
    WHERE mac IS NOT NULL AND EXISTS (
        SELECT 1 FROM endpoints o
        WHERE o.network_id = endpoints.network_id AND o.mac = endpoints.mac
          AND (o.created_at < endpoints.created_at
               OR (o.created_at = endpoints.created_at AND o.id < endpoints.id)));

CREATE UNIQUE INDEX endpoints_mac ON endpoints (network_id, mac);
