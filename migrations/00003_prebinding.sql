-- +goose Up
-- Pre-binding: an admin creates a binding before its key is used (one at a time, or imported
-- in bulk). Such a binding has no first or last address and no last use until the key is
-- used; a binding never used is never archived (archive.go), so a key handed out bound to its
-- customer's address cannot fall back to first use just because the customer is slow to start.
ALTER TABLE token_bindings
    ALTER COLUMN first_ip DROP NOT NULL,
    ALTER COLUMN last_ip DROP NOT NULL,
    ALTER COLUMN last_used_at DROP NOT NULL,
    ALTER COLUMN last_used_at DROP DEFAULT,
    ADD COLUMN origin text NOT NULL DEFAULT 'first_use' CHECK (origin IN ('first_use', 'admin', 'import'));
ALTER TABLE archived_bindings
    ALTER COLUMN first_ip DROP NOT NULL,
    ALTER COLUMN last_ip DROP NOT NULL,
    ALTER COLUMN last_used_at DROP NOT NULL,
    ADD COLUMN origin text NOT NULL DEFAULT 'first_use';

-- +goose Down
DELETE FROM token_bindings WHERE last_used_at IS NULL;
DELETE FROM archived_bindings WHERE last_used_at IS NULL;
UPDATE token_bindings SET first_ip = '0.0.0.0', last_ip = '0.0.0.0' WHERE first_ip IS NULL;
UPDATE archived_bindings SET first_ip = '0.0.0.0', last_ip = '0.0.0.0' WHERE first_ip IS NULL;
ALTER TABLE archived_bindings DROP COLUMN origin,
    ALTER COLUMN first_ip SET NOT NULL, ALTER COLUMN last_ip SET NOT NULL, ALTER COLUMN last_used_at SET NOT NULL;
ALTER TABLE token_bindings DROP COLUMN origin,
    ALTER COLUMN first_ip SET NOT NULL, ALTER COLUMN last_ip SET NOT NULL,
    ALTER COLUMN last_used_at SET DEFAULT now(), ALTER COLUMN last_used_at SET NOT NULL;
