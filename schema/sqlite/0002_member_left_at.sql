-- When a member left a group's conversation (Unix ms; 0 while active). A
-- former member's list shows the conversation as of that moment, so later
-- messages do not bring it back into their updated_after syncs.
ALTER TABLE conversation_members ADD COLUMN left_at INTEGER NOT NULL DEFAULT 0;
