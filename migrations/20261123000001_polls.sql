-- Polls, their options with running counters, and one ballot per voter and poll.
--
-- The ballots primary key is what makes counting exactly-once: the aggregator inserts a
-- ballot and increments option counters only for rows that were actually inserted, in one
-- transaction, so a replayed or duplicated vote changes nothing.

CREATE TABLE polls (
    id          UUID PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    owner_id    TEXT NOT NULL,
    question    TEXT NOT NULL CHECK (length(question) BETWEEN 1 AND 500),
    kind        TEXT NOT NULL CHECK (kind IN ('single', 'multiple')),
    max_choices INT  NOT NULL CHECK (max_choices >= 1),
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closes_at   TIMESTAMPTZ,
    -- Bumped by every flush that changed the poll; orders snapshots.
    seq         BIGINT NOT NULL DEFAULT 0,
    -- Ballots counted (voters).
    total       BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX polls_owner_idx ON polls (owner_id, created_at DESC);

CREATE TABLE options (
    id       UUID PRIMARY KEY,
    poll_id  UUID NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
    position INT  NOT NULL,
    text     TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 200),
    votes    BIGINT NOT NULL DEFAULT 0 CHECK (votes >= 0),
    UNIQUE (poll_id, position)
);

CREATE TABLE ballots (
    poll_id    UUID NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
    voter_id   TEXT NOT NULL,
    vote_id    UUID NOT NULL,
    option_ids UUID[] NOT NULL,
    cast_at    TIMESTAMPTZ NOT NULL,
    counted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, voter_id)
);
