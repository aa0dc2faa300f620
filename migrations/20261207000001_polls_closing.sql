-- A closed poll first reads `closing`: no vote is taken any more, but votes accepted before
-- its `closed_at` may still be on their way to the tally. The aggregator's closer makes it
-- `closed` once every such vote is counted, so `closed` (and `poll-closed`) always carries the
-- final count. Polls closed before this migration were counted long ago: they stay `closed`.
ALTER TABLE polls DROP CONSTRAINT polls_status_check;
ALTER TABLE polls ADD CONSTRAINT polls_status_check CHECK (status IN ('open', 'closing', 'closed'));
-- Whether the `closing` snapshot has been produced to `poll-updates` (`close_announced` is the
-- same for the final one).
ALTER TABLE polls ADD COLUMN closing_announced BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX polls_closing_idx ON polls (closed_at) WHERE status = 'closing';
