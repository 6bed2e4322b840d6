-- no-transaction
-- Blobs are found by their owner and hash instead of by hash alone. A content
-- hash lands at a random place in an index on the hash, so every commit that
-- stored collections rewrote one leaf of that index per collection: a quarter
-- of what a first inspection appended to the WAL (docs/performance.md,
-- item 29). Keyed by the tenant that stored it, a tenant's new blobs share a
-- leaf or two. Content several tenants hold (built-in role definitions,
-- default policies) is owned by 0, shared; a commit looks a blob up among
-- its tenant's and the shared ones. A blob is still used by every dataprint
-- whose collection set names it, whatever its owner.
--
-- SQLite cannot drop the index of a UNIQUE constraint, so the table is
-- rebuilt; collection_set_members refers to it, which is why foreign keys
-- are turned off around the rebuild (SQLite's documented procedure, which
-- cannot run inside the transaction a migration normally gets). Run again
-- after a crash before its version was recorded, it rebuilds the table once
-- more with the same result.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE blobs_new (
    id      INTEGER PRIMARY KEY,
    -- The tenant key (tenant_keys.key) of the tenant whose commit stored it,
    -- or 0: shared by several tenants.
    owner   INTEGER NOT NULL,
    hash    TEXT NOT NULL,
    raw_len INTEGER NOT NULL,
    data    BLOB NOT NULL
);
INSERT INTO blobs_new (id, owner, hash, raw_len, data)
    SELECT b.id,
           (SELECT CASE WHEN count(DISTINCT d.tenant_key) = 1 THEN min(d.tenant_key) ELSE 0 END
            FROM collection_set_members m JOIN dataprints d ON d.set_id = m.set_id
            WHERE m.blob_id = b.id),
           b.hash, b.raw_len, b.data
    FROM blobs b ORDER BY b.id;
DROP TABLE blobs;
ALTER TABLE blobs_new RENAME TO blobs;
CREATE UNIQUE INDEX blobs_owner_hash ON blobs (owner, hash);
COMMIT;
PRAGMA foreign_keys = ON;
-- The old table's pages are free now; without this the file would stay
-- twice the size until a prune reclaims them.
PRAGMA incremental_vacuum;
