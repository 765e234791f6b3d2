-- See schema/sqlite/0008_sessions.sql for what each table means.
CREATE TABLE IF NOT EXISTS mqtt_sessions (
    client_id       VARCHAR(130) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    expiry_s        BIGINT NOT NULL,
    baseline        BIGINT NOT NULL,
    disconnected_at BIGINT NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS mqtt_session_positions (
    client_id VARCHAR(130) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    conv_id   VARCHAR(140) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (client_id, conv_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
