-- From this version on, blobs, envelopes, run members and tenant results are
-- written as zstd frames; those written before stay zlib streams, and both are
-- read (`blob.rs`, `decompress`). Nothing in the schema changes: the version
-- exists so that an earlier tenantscope, which reads only zlib, refuses the
-- store as written by a newer version instead of reporting its new blobs as
-- corrupt.
SELECT 1;
