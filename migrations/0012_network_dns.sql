-- Issue 12: a network serves DNS (weftd's resolver on its gateways) unless created with
-- `dns: false`. Networks stored before keep their behaviour explicit in their spec: the
-- default network (`bridge`) has none, as Docker's default bridge; every other network has it.
UPDATE networks
SET spec = json_set(spec, '$.dns', json(CASE is_default WHEN 1 THEN 'false' ELSE 'true' END))
WHERE json_extract(spec, '$.dns') IS NULL;
