-- Page rules (per zone) and named lists (per account) with their items and bulk operations.
-- Booleans are BIGINT 0/1 and JSON is TEXT, so the file runs on SQLite and PostgreSQL alike.

-- `targets` and `actions` are the JSON arrays the API returns, validated by the edge crate
-- before they are stored.
CREATE TABLE page_rules (
    id TEXT PRIMARY KEY,
    zone_id TEXT NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    targets TEXT NOT NULL,
    actions TEXT NOT NULL,
    priority BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);

CREATE INDEX page_rules_by_zone ON page_rules (zone_id, priority);

CREATE TABLE lists (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

-- `value` is the item's canonical text (`10.0.0.0/8`, `*.example.com`, `13335`), unique in
-- its list; `data` is the item's JSON field as the API returns it.
CREATE TABLE list_items (
    id TEXT PRIMARY KEY,
    list_id TEXT NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    value TEXT NOT NULL,
    data TEXT NOT NULL,
    comment TEXT,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    UNIQUE (list_id, value)
);

-- Item changes are bulk operations, as on Cloudflare; edgetrace runs them at once and records
-- how they ended. An operation outlives its list.
CREATE TABLE list_operations (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    list_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT
);

CREATE INDEX list_operations_by_account ON list_operations (account_id, id);
