-- +goose Up
-- Every write to a binding takes a new version from one sequence, so versions only grow,
-- also across unbind and rebind. Redis keeps the version it last saw next to each entry and
-- refuses an older one: a decide that read the row before an admin change cannot put the
-- stale rule back into the cache.
CREATE SEQUENCE binding_version;
ALTER TABLE token_bindings ADD COLUMN version bigint NOT NULL DEFAULT nextval('binding_version');

CREATE INDEX token_bindings_created_at ON token_bindings (created_at);
CREATE INDEX intercept_logs_ip ON intercept_logs (ip);

-- Runtime settings edited from the console. PostgreSQL keeps them; admind publishes them to
-- Redis (sentinel:settings) for the plugin and for the other admind replicas.
CREATE TABLE runtime_settings (
    id          int         PRIMARY KEY CHECK (id = 1),
    value       jsonb       NOT NULL,
    updated_by  text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE runtime_settings;
DROP INDEX intercept_logs_ip;
DROP INDEX token_bindings_created_at;
ALTER TABLE token_bindings DROP COLUMN version;
DROP SEQUENCE binding_version;
