-- Issue 14: GetSystemInfo's `rechecking` counts the objects a restart marked Rechecking and
-- no re-check has confirmed yet. A partial index holds only those rows, so the count reads
-- as many entries as are still waiting (none on a settled host), not every row of 20,000.

CREATE INDEX namespaces_rechecking ON namespaces (id) WHERE rechecking = 1;
CREATE INDEX links_rechecking ON links (id) WHERE rechecking = 1;
CREATE INDEX networks_rechecking ON networks (id) WHERE rechecking = 1;
CREATE INDEX endpoints_rechecking ON endpoints (id) WHERE rechecking = 1;
