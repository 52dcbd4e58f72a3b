-- A Linux bridge takes 1,023 ports, whoever attaches them: a network's endpoints and the
-- link interfaces whose master it is. Each link interface's master (its bridge, in the same
-- namespace; NULL for none) is kept beside its name, so a Connect or a link create counts a
-- bridge's link ports with one index range, not a parse of every link's spec.

ALTER TABLE link_ifaces ADD COLUMN master TEXT;

UPDATE link_ifaces SET master = (
    SELECT CASE link_ifaces.end_index
               WHEN 0 THEN json_extract(l.spec, '$.end.master')
               ELSE json_extract(l.spec, '$.kind.veth.peer.master')
           END
    FROM links l WHERE l.id = link_ifaces.link_id
);

CREATE INDEX link_ifaces_master ON link_ifaces (ns_key, master) WHERE master IS NOT NULL;
