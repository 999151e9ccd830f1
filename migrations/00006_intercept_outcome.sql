-- +goose Up
-- What happened to an intercepted request: 'refused', or 'forwarded' when the plugin ran in
-- monitor mode (it decides and records, never blocks). Rows recorded before this migration
-- keep NULL: nothing recorded then whether they were refused.
ALTER TABLE intercept_logs ADD COLUMN outcome text CHECK (outcome IN ('refused', 'forwarded'));

-- +goose Down
ALTER TABLE intercept_logs DROP COLUMN outcome;
