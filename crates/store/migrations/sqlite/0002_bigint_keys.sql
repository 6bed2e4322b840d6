-- PostgreSQL's keys became 64-bit in this version; SQLite's integer keys always were. The
-- migration exists so that both dialects number the same change alike.
SELECT 1;
