-- +goose Up
-- Admin API tokens for scripts and automation. Only the SHA-256 of a token is kept (a token
-- is 256 random bits, so a fast hash is enough); prefix is its first characters, shown in the
-- console so an operator can tell tokens apart. Names are never reused, so admin_audit's
-- "token:<name>" always means one token.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    token_hash   text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    prefix       text        NOT NULL,
    scope        text        NOT NULL CHECK (scope IN ('read', 'write')),
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    last_used_ip inet,
    revoked_at   timestamptz,
    revoked_by   text
);

-- +goose Down
DROP TABLE api_tokens;
