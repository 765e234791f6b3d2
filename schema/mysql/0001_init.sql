-- See schema/sqlite/0001_init.sql for what each table means; the two files
-- describe the same tables. Ids are ASCII ([A-Za-z0-9_.@-]), so their columns
-- use an ASCII binary collation: byte order, like SQLite.
CREATE TABLE IF NOT EXISTS users (
    id            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    name          VARCHAR(255) NOT NULL DEFAULT '',
    avatar        VARCHAR(1024) NOT NULL DEFAULT '',
    ext           MEDIUMTEXT,
    password_hash VARCHAR(255) NOT NULL DEFAULT '',
    disabled      TINYINT NOT NULL DEFAULT 0,
    tokens_after  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS chat_groups (
    id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    name        VARCHAR(255) NOT NULL DEFAULT '',
    avatar      VARCHAR(1024) NOT NULL DEFAULT '',
    notice      TEXT NOT NULL,
    owner       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    join_policy VARCHAR(16) NOT NULL DEFAULT 'invite',
    mute_all    TINYINT NOT NULL DEFAULT 0,
    ext         MEDIUMTEXT,
    dissolved   TINYINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS group_members (
    group_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    role        VARCHAR(16) NOT NULL DEFAULT 'member',
    muted_until BIGINT NOT NULL DEFAULT 0,
    join_seq    BIGINT NOT NULL DEFAULT 0,
    joined_at   BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY group_members_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS conversations (
    id          VARCHAR(140) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    kind        VARCHAR(8) NOT NULL,
    last_seq    BIGINT NOT NULL DEFAULT 0,
    last_msg_id VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    updated_at  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS conversation_members (
    user_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    conv_id    VARCHAR(140) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    read_seq   BIGINT NOT NULL DEFAULT 0,
    min_seq    BIGINT NOT NULL DEFAULT 0,
    pinned     TINYINT NOT NULL DEFAULT 0,
    muted      TINYINT NOT NULL DEFAULT 0,
    hidden     TINYINT NOT NULL DEFAULT 0,
    active     TINYINT NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, conv_id),
    KEY conversation_members_conv (conv_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS messages (
    id         VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    conv_id    VARCHAR(140) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq        BIGINT NOT NULL,
    sender     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    to_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    cid        VARCHAR(64) NULL,
    type       VARCHAR(16) NOT NULL,
    body       MEDIUMTEXT NOT NULL,
    reply_to   VARCHAR(32) NOT NULL DEFAULT '',
    mentions   TEXT NOT NULL,
    ext        MEDIUMTEXT,
    ts         BIGINT NOT NULL,
    edited_at  BIGINT NOT NULL DEFAULT 0,
    recalled   TINYINT NOT NULL DEFAULT 0,
    UNIQUE KEY messages_conv_seq (conv_id, seq),
    UNIQUE KEY messages_sender_cid (sender, cid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS devices (
    user_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    device_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    platform   VARCHAR(16) NOT NULL,
    token      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    topic      VARCHAR(255) NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id),
    UNIQUE KEY devices_token (platform, token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
