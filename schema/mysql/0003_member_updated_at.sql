-- See schema/sqlite/0003_member_updated_at.sql.
ALTER TABLE conversation_members ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
