-- See schema/sqlite/0009_conversation_order.sql: every message gets a
-- message_search row, whose primary key replaces the index
-- messages_conv_seq. (Run again after an interruption, the DROP of an index
-- already gone counts as applied.)
INSERT IGNORE INTO message_search (conv_id, seq, ts, msg_id, content) SELECT conv_id, seq, ts, id, '' FROM messages;
ALTER TABLE messages DROP INDEX messages_conv_seq;
