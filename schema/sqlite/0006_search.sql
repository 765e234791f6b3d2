-- Message search (docs/http-api.md, "Search"): one row per searchable
-- message (text, file name, location name), holding its text folded in Go
-- (store.FoldText: NFKC, case folding, white space made single spaces), so
-- that a search is a substring test on both dialects alike. Commit writes
-- the rows with the messages (one multi-row insert per batch), deletes a
-- recalled message's row and replaces an edited one's, in the same
-- transaction. Keyed like messages, so a conversation's rows are one
-- range: a search scans the caller's conversations, within their windows.
-- Existing messages are indexed by the Go step that sqlstore.Migrate runs
-- right after this file (backfillSearch), before the migration counts as
-- applied.
CREATE TABLE IF NOT EXISTS message_search (
    conv_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    msg_id  TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
