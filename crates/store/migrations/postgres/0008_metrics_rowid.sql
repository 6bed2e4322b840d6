-- SQLite's migration 0008 turns its metrics table into a rowid table, so that
-- the (name, at) index's entries no longer carry the whole key. PostgreSQL's
-- tables are heaps and its index entries point at a row by its location
-- already: nothing to change.
SELECT 1;
