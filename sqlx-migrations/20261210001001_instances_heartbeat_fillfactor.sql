-- Heartbeats rewrite each instance's worker columns every few seconds (in
-- batches, see docs/architecture.md#heartbeats). None of those columns is
-- indexed, so the new row version can stay on its page (a HOT update: no
-- new entry in the table's indexes, less WAL) when the page has room:
-- leave half of each page free. Applies to pages written from now on; a
-- row updated into a full page moves to a page with room once.
ALTER TABLE instances SET (fillfactor = 50);
