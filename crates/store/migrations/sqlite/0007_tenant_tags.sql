-- Tags engineers put on a tenant (a service tier, a region, a contract), to filter the fleet by.
-- Lower case, one row each.
CREATE TABLE tenant_tags (
    tenant_id TEXT NOT NULL,
    tag       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, tag)
) WITHOUT ROWID;
CREATE INDEX tenant_tags_tag ON tenant_tags (tag);
