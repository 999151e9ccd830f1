-- +goose Up
-- The learning rule: a binding that takes the first learn_slots distinct addresses (each
-- widened to the bind prefix) until learn_until, then holds them. The table itself bounds the
-- list, so no interleaving of concurrent learners can make it longer than learn_slots.
ALTER TABLE token_bindings
    DROP CONSTRAINT token_bindings_rule_mode_check,
    DROP CONSTRAINT token_bindings_check,
    ADD COLUMN learn_slots int NOT NULL DEFAULT 0,
    ADD COLUMN learn_until timestamptz,
    ADD CONSTRAINT token_bindings_rule_mode_check CHECK (rule_mode IN ('single', 'multiple', 'all', 'learning')),
    -- A learning binding may hold no address yet (pre-bound); every other rule but "all" holds one.
    ADD CONSTRAINT token_bindings_check CHECK (rule_mode IN ('all', 'learning') OR cardinality(cidrs) > 0),
    ADD CONSTRAINT token_bindings_learning_check CHECK (
        (rule_mode = 'learning' AND learn_slots BETWEEN 1 AND 64 AND learn_until IS NOT NULL AND cardinality(cidrs) <= learn_slots)
        OR (rule_mode <> 'learning' AND learn_slots = 0 AND learn_until IS NULL));
ALTER TABLE archived_bindings
    ADD COLUMN learn_slots int NOT NULL DEFAULT 0,
    ADD COLUMN learn_until timestamptz;

-- +goose Down
UPDATE token_bindings SET rule_mode = 'multiple', learn_slots = 0, learn_until = NULL WHERE rule_mode = 'learning' AND cardinality(cidrs) > 0;
DELETE FROM token_bindings WHERE rule_mode = 'learning';
ALTER TABLE archived_bindings DROP COLUMN learn_until, DROP COLUMN learn_slots;
ALTER TABLE token_bindings
    DROP CONSTRAINT token_bindings_learning_check,
    DROP CONSTRAINT token_bindings_check,
    DROP CONSTRAINT token_bindings_rule_mode_check,
    DROP COLUMN learn_until,
    DROP COLUMN learn_slots,
    ADD CONSTRAINT token_bindings_rule_mode_check CHECK (rule_mode IN ('single', 'multiple', 'all')),
    ADD CONSTRAINT token_bindings_check CHECK (rule_mode = 'all' OR cardinality(cidrs) > 0);
