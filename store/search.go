package store

import (
	"encoding/json"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Message search (GET /v1/messages/search). What is searchable, and how text
// is normalized, is decided here, once, in Go, for both the index and the
// query: so SQLite and MySQL/MariaDB find exactly the same messages, whatever
// their collations.

// SearchQuery selects a page of search results (Messages.Search).
type SearchQuery struct {
	// Text is the folded query (FoldText), non-empty: a result's folded
	// searchable text contains it as a substring.
	Text string
	// Conv, when set, narrows the search to that conversation.
	Conv string
	// Before, when set, starts the page strictly after that position in
	// the order newest first (TS, then ID, descending).
	Before *SearchCursor
	// Limit caps the page.
	Limit int
}

// SearchCursor is a position in the search order: a result's TS and ID.
type SearchCursor struct {
	TS int64
	ID string
}

// SearchText is the text by which a stored message is found, folded
// (FoldText): a text message's text, a file's name, a location's name;
// empty for every other type (and for a body without one), which is not
// searchable. Recall and edit records and system messages are never
// searchable; a recalled message is not either (its body is gone).
func SearchText(typ string, body JSON) string {
	var b struct {
		Text *string `json:"text"`
		Name *string `json:"name"`
	}
	switch typ {
	case "text", "file", "location":
	default:
		return ""
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	s := b.Text
	if typ != "text" {
		s = b.Name
	}
	if s == nil {
		return ""
	}
	return FoldText(*s)
}

// FoldText normalizes text for search: NFKC (full-width Latin and digits
// become ASCII, half-width katakana full-width, compatibility ideographs and
// ligatures their canonical characters), full Unicode case folding, NFKC
// again (folding may un-normalize), and every run of white space (line
// breaks included) made one space, trimmed at both ends. The result is
// valid UTF-8 whose substrings are what a search matches.
func FoldText(s string) string {
	if ascii(s) {
		// What NFKC and case folding do to ASCII: lower the letters.
		return strings.Join(strings.FieldsFunc(strings.ToLower(s), unicode.IsSpace), " ")
	}
	return foldUnicode(s)
}

// foldUnicode is FoldText for any text.
func foldUnicode(s string) string {
	s = norm.NFKC.String(strings.ToValidUTF8(s, "\uFFFD"))
	// Full Unicode case folding (ß → ss, Σ/σ/ς → σ), not lowering; a
	// Caser is stateful, so one per call.
	s = norm.NFKC.String(cases.Fold().String(s))
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
