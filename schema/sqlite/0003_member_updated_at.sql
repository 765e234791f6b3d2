-- When the member's own view of the conversation last changed (Unix ms): a
-- read that moved, a pin, mute or hide. Their updated time in lists and
-- updated_after syncs is the later of this and the conversation's (or, for
-- a former member, their leave), so a second device sees such changes.
ALTER TABLE conversation_members ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
