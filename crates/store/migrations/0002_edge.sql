-- The edge configuration: zones, their DNS records (proxied ones name the hostnames the proxy
-- serves and their origins), and rulesets with every version kept.
-- Booleans are BIGINT 0/1 and JSON is TEXT, so the file runs on SQLite and PostgreSQL alike.
CREATE TABLE zones (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    paused BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);

CREATE INDEX zones_by_account ON zones (account_id, name);

CREATE TABLE dns_records (
    id TEXT PRIMARY KEY,
    zone_id TEXT NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    proxied BIGINT NOT NULL,
    ttl BIGINT NOT NULL,
    comment TEXT,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);

CREATE INDEX dns_records_by_zone ON dns_records (zone_id, name);
CREATE INDEX dns_records_by_name ON dns_records (name);

-- A ruleset belongs to an account (zone_id NULL) or to one of its zones. `rules` is the JSON
-- array of the current version; ruleset_versions keeps every version's full JSON.
CREATE TABLE rulesets (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    zone_id TEXT REFERENCES zones (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    kind TEXT NOT NULL,
    phase TEXT NOT NULL,
    version BIGINT NOT NULL,
    rules TEXT NOT NULL,
    last_updated BIGINT NOT NULL
);

CREATE INDEX rulesets_by_scope ON rulesets (account_id, zone_id, phase);

CREATE TABLE ruleset_versions (
    ruleset_id TEXT NOT NULL REFERENCES rulesets (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (ruleset_id, version)
);
