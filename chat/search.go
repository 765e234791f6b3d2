package chat

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mqim/mqim/store"
)

// This file holds message search, whichever door asks: what a query may
// be, whose messages it finds, and its pages.
//
// What is found (store.SearchText): text messages by their text, file
// messages by their file name, location messages by their place name; as
// they are now (an edited message by its new text, never its old one; a
// recalled one never). Recall and edit records, system messages and every
// other type are never results. Matching is by substring on text folded the
// same way for index and query (store.FoldText: NFKC, Unicode case folding,
// white space runs made one space), so 好世 finds 你好世界, hello finds
// "Hello", and ＡＢＣ (full-width) finds "abc"; a query of any length from
// one character on works the same way, there is no minimum an index needs.
//
// Whose: the caller's own conversations, those they are or were in, each
// within the window History shows them: a member's messages after their
// join point (MinSeq), a former member's up to their leave.

// SearchQuery is one search request: the query text Q (1 to
// MaxSearchQuery characters once trimmed), optionally narrowed to one
// conversation, from the position Cursor names (empty: the newest), at
// most Limit (1 to MaxSearchPage) results.
type SearchQuery struct {
	Q      string
	Conv   string
	Cursor string
	Limit  int
}

// Search limits.
const (
	MaxSearchQuery = 100 // characters of q, after trimming
	MaxSearchPage  = 100 // results per page
)

// Search finds the messages uid may see that match q.Q, newest first
// (by time, ties by id). When more remain, next is the opaque cursor of the
// following page; empty at the end. Searching a conversation the user is
// not and never was in is not_found, as reading it is.
func (s *Service) Search(ctx context.Context, uid string, q SearchQuery) (ms []*store.Message, next string, err error) {
	if !utf8.ValidString(q.Q) {
		return nil, "", errorf(CodeInvalid, "q must be UTF-8")
	}
	text := strings.TrimSpace(q.Q)
	if n := utf8.RuneCountInString(text); n < 1 || n > MaxSearchQuery {
		return nil, "", errorf(CodeInvalid, "q must be 1 to %d characters (leading and trailing spaces do not count)", MaxSearchQuery)
	}
	folded := store.FoldText(text)
	if folded == "" {
		return nil, "", errorf(CodeInvalid, "q has nothing to search for")
	}
	if q.Limit < 1 || q.Limit > MaxSearchPage {
		return nil, "", errorf(CodeInvalid, "limit must be 1 to %d", MaxSearchPage)
	}
	sq := store.SearchQuery{Text: folded, Conv: q.Conv, Limit: q.Limit + 1}
	if q.Cursor != "" {
		if sq.Before, err = decodeSearchCursor(q.Cursor); err != nil {
			return nil, "", err
		}
	}
	if q.Conv != "" {
		if _, err := s.Conversation(ctx, uid, q.Conv); err != nil {
			return nil, "", err
		}
	}
	ms, err = s.st.Search(ctx, uid, sq)
	if err != nil {
		return nil, "", AsError(err)
	}
	if len(ms) > q.Limit {
		ms = ms[:q.Limit]
		last := ms[len(ms)-1]
		next = encodeSearchCursor(store.SearchCursor{TS: last.TS, ID: last.ID})
	}
	return ms, next, nil
}

// A search cursor is the last result's time and id, "ts|id",
// base64url-encoded so that clients treat it as opaque.
func encodeSearchCursor(c store.SearchCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.TS, 10) + "|" + c.ID))
}

func decodeSearchCursor(s string) (*store.SearchCursor, error) {
	bad := errorf(CodeInvalid, "invalid cursor: pass the X-Next-Cursor of the previous page as is")
	if len(s) > 200 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	ts, id, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || n < 0 || !ValidID(id) || len(id) > 32 {
		return nil, bad
	}
	return &store.SearchCursor{TS: n, ID: id}, nil
}
