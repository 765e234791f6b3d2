-- See schema/sqlite/0002_member_left_at.sql.
ALTER TABLE conversation_members ADD COLUMN left_at BIGINT NOT NULL DEFAULT 0;
