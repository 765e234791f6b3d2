-- See schema/sqlite/0005_social.sql for what each table means.
CREATE TABLE IF NOT EXISTS friend_requests (
    from_user  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    to_user    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    message    VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (from_user, to_user),
    KEY friend_requests_to (to_user)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS friends (
    user_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    friend_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    since     BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS blocks (
    user_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    blocked_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
