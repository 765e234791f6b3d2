-- Persistent MQTT sessions served from the store (docs/protocol.md,
-- "Persistent sessions").

-- One row per persistent session (client id = {user_id}/{device_id}).
-- baseline is when the session began (Unix ms): a conversation with no
-- position replays the messages stored after it. disconnected_at is when
-- its last connection ended (0 while connected); the session expires
-- expiry_s seconds after that.
CREATE TABLE IF NOT EXISTS mqtt_sessions (
    client_id       TEXT NOT NULL PRIMARY KEY,
    user_id         TEXT NOT NULL,
    expiry_s        INTEGER NOT NULL,
    baseline        INTEGER NOT NULL,
    disconnected_at INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);

-- How far a session has acknowledged each conversation: every message of
-- conv_id up to seq is delivered (recorded lazily: it may lag, never lead).
CREATE TABLE IF NOT EXISTS mqtt_session_positions (
    client_id TEXT NOT NULL,
    conv_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (client_id, conv_id)
);
