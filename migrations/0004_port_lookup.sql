-- A published port's conflict check asks "is (protocol, host_port) taken on this address or on
-- every address?": without this index that is a scan of every mapping per published port.
CREATE INDEX port_mappings_port ON port_mappings (protocol, host_port);
