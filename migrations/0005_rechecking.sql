-- The re-check after a restart is a state of its own, no longer a message: an object that was
-- Ready when weftd stopped is Rechecking until its first reconcile has checked the kernel.
-- The phase column's CHECK predates the state, and SQLite cannot change a CHECK without
-- rebuilding the table (and every table whose foreign keys point at it), so the state is a
-- flag beside it: phase 'pending' with rechecking = 1. Every write of phase writes the flag.
-- Rows that a 0004 weftd left pending with the re-check message become that state; the API
-- still shows it as PENDING with the same message.

ALTER TABLE namespaces ADD COLUMN rechecking INTEGER NOT NULL DEFAULT 0 CHECK (rechecking IN (0, 1));
ALTER TABLE links ADD COLUMN rechecking INTEGER NOT NULL DEFAULT 0 CHECK (rechecking IN (0, 1));
ALTER TABLE networks ADD COLUMN rechecking INTEGER NOT NULL DEFAULT 0 CHECK (rechecking IN (0, 1));
ALTER TABLE endpoints ADD COLUMN rechecking INTEGER NOT NULL DEFAULT 0 CHECK (rechecking IN (0, 1));

UPDATE namespaces SET rechecking = 1, message = ''
    WHERE phase = 'pending' AND message = 'weftd restarted; checking the kernel again';
UPDATE links SET rechecking = 1, message = ''
    WHERE phase = 'pending' AND message = 'weftd restarted; checking the kernel again';
UPDATE networks SET rechecking = 1, message = ''
    WHERE phase = 'pending' AND message = 'weftd restarted; checking the kernel again';
UPDATE endpoints SET rechecking = 1, message = ''
    WHERE phase = 'pending' AND message = 'weftd restarted; checking the kernel again';
