-- Whether guests (tokens from POST /api/v1/auth/guest, role `guest`) may vote in a poll; a
-- poll that needs accounts refuses them with 403 guests_not_allowed. Existing polls keep
-- taking guests, as they did.
ALTER TABLE polls ADD COLUMN allow_guests BOOLEAN NOT NULL DEFAULT true;
