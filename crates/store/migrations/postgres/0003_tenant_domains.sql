-- Every verified domain of a tenant, from its own dataprint (`domains`) and from what the partner
-- sees of it (GDAP relationships and contracts), so that `--tenant` finds it by any of them.
CREATE TABLE tenant_domains (
    tenant_id TEXT NOT NULL,
    domain    TEXT NOT NULL,
    source    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, domain, source)
);
CREATE INDEX tenant_domains_lower ON tenant_domains (lower(domain));
CREATE INDEX tenants_name_lower ON tenants (lower(display_name));

-- A note an engineer gave a tenant (`tenants add-app --label`), shown beside its name.
ALTER TABLE tenants ADD COLUMN label TEXT;
