-- See schema/sqlite/0006_search.sql: the same table. content is folded in
-- Go and compared byte for byte (utf8mb4_bin), never by a collation, so
-- MySQL and MariaDB find what SQLite finds. Existing messages are indexed by
-- the Go step that sqlstore.Migrate runs right after this file.
CREATE TABLE IF NOT EXISTS message_search (
    conv_id VARCHAR(140) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq     BIGINT NOT NULL,
    ts      BIGINT NOT NULL,
    msg_id  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    content MEDIUMTEXT NOT NULL,
    PRIMARY KEY (conv_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
