-- Accounts with rotating refresh tokens, poll lifecycle and results visibility.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    -- Stored lower-cased; unique regardless of the case it was typed in.
    email         TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per refresh token ever issued. Tokens of one login form a family; using a token
-- twice means it leaked, and revokes the whole family.
CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    family_id   UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token: a database leak does not leak usable tokens.
    token_hash  BYTEA NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

ALTER TABLE polls
    ADD COLUMN min_choices INT NOT NULL DEFAULT 1 CHECK (min_choices >= 1),
    ADD COLUMN results_visibility TEXT NOT NULL DEFAULT 'always'
        CHECK (results_visibility IN ('always', 'after_vote', 'after_close', 'owner_only')),
    -- When the poll stopped taking votes; votes cast after it are not counted.
    ADD COLUMN closed_at TIMESTAMPTZ,
    -- Whether the closing snapshot reached `poll-updates`; the aggregator retries until so.
    ADD COLUMN close_announced BOOLEAN NOT NULL DEFAULT false,
    ADD CONSTRAINT polls_choices_check CHECK (min_choices <= max_choices);

CREATE INDEX polls_due_to_close_idx ON polls (closes_at) WHERE status = 'open' AND closes_at IS NOT NULL;
CREATE INDEX polls_unannounced_idx ON polls (id) WHERE status = 'closed' AND NOT close_announced;
