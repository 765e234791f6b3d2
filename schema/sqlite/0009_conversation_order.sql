-- message_search gets a row for every message, not only the searchable ones
-- (content '' for the others: not a text, file or location message, a
-- recall or edit record, a recalled message), so its primary key (conv_id,
-- seq) is the conversations' order of messages: it makes (conv_id, seq)
-- unique and history pages by it. The index messages_conv_seq, which did
-- the same, goes: the group commit then writes one B-tree keyed by
-- conversation per message instead of two (each such insert dirties a page
-- of its own: about a quarter of the WAL pages a commit writes,
-- BENCHMARKS.md). Commit writes the rows with the messages; a recall
-- empties its message's content, an edit replaces it.
INSERT OR IGNORE INTO message_search (conv_id, seq, ts, msg_id, content) SELECT conv_id, seq, ts, id, '' FROM messages;
DROP INDEX IF EXISTS messages_conv_seq;
