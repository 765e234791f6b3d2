-- See schema/sqlite/0004_group_requests.sql. message holds at most 200
-- characters.
CREATE TABLE IF NOT EXISTS group_requests (
    group_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    message    VARCHAR(1024) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
