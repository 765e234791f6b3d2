-- See schema/sqlite/0010_session_owner.sql.
ALTER TABLE mqtt_sessions ADD COLUMN node VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '';
ALTER TABLE mqtt_sessions ADD COLUMN connected_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX mqtt_sessions_node ON mqtt_sessions (node, disconnected_at);
