-- Which namespace an adopted path named when weft adopted it (issue 10, review of item 3):
-- "<dev>:<ino>" of the nsfs file. A path like /proc/<pid>/ns/net names another namespace once
-- the pid is reused; weft compares the identity before every use, so it never follows a path
-- into an unrelated namespace (one whose process died while weftd was down, say).
-- NULL for namespaces weft creates, and for rows adopted before this migration (checked by
-- path only, as before).

ALTER TABLE namespaces ADD COLUMN adopted_identity TEXT;
