-- As SQLite's migration 0012: blobs are looked up by the tenant that stored
-- them and their hash, so that a tenant's new blobs land together in the
-- index instead of one at a random place each. A blob the dataprints of one
-- tenant use belongs to it; one that several tenants' use (or none) is
-- shared, owner 0.
ALTER TABLE blobs ADD COLUMN owner BIGINT NOT NULL DEFAULT 0;
UPDATE blobs b SET owner = o.tenant_key
    FROM (SELECT m.blob_id, min(d.tenant_key) AS tenant_key
          FROM collection_set_members m JOIN dataprints d ON d.set_id = m.set_id
          GROUP BY m.blob_id HAVING count(DISTINCT d.tenant_key) = 1) o
    WHERE o.blob_id = b.id;
ALTER TABLE blobs ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE blobs DROP CONSTRAINT IF EXISTS blobs_hash_key;
CREATE UNIQUE INDEX blobs_owner_hash ON blobs (owner, hash);
