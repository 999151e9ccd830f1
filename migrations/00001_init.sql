-- +goose Up
CREATE TABLE token_bindings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash     text        NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_hint     text        NOT NULL DEFAULT '',
    rule_mode    text        NOT NULL DEFAULT 'single' CHECK (rule_mode IN ('single', 'multiple', 'all')),
    cidrs        cidr[]      NOT NULL DEFAULT '{}',
    status       text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned')),
    first_ip     inet        NOT NULL,
    last_ip      inet        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    note         text        NOT NULL DEFAULT '',
    CHECK (rule_mode = 'all' OR cardinality(cidrs) > 0)
);
CREATE INDEX token_bindings_last_used_at ON token_bindings (last_used_at);

-- An archived binding keeps its history; the key binds again on its next use.
CREATE TABLE archived_bindings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    binding_id   bigint      NOT NULL,
    key_hash     text        NOT NULL,
    key_hint     text        NOT NULL,
    rule_mode    text        NOT NULL,
    cidrs        cidr[]      NOT NULL,
    status       text        NOT NULL,
    first_ip     inet        NOT NULL,
    last_ip      inet        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    note         text        NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archived_bindings_key_hash ON archived_bindings (key_hash);

CREATE TABLE intercept_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash    text        NOT NULL,
    key_hint    text        NOT NULL DEFAULT '',
    ip          inet        NOT NULL,
    reason      text        NOT NULL,
    method      text        NOT NULL DEFAULT '',
    path        text        NOT NULL DEFAULT '',
    user_agent  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intercept_logs_created_at ON intercept_logs (created_at);
CREATE INDEX intercept_logs_key_hash_created_at ON intercept_logs (key_hash, created_at);

CREATE TABLE admin_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    before      jsonb,
    after       jsonb,
    ip          inet,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_created_at ON admin_audit (created_at);

-- +goose Down
DROP TABLE admin_audit;
DROP TABLE intercept_logs;
DROP TABLE archived_bindings;
DROP TABLE token_bindings;
