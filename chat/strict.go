package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file owns the strict JSON rules of docs/protocol.md ("JSON
// payloads"): what a client sends must mean one thing to every JSON parser,
// so a document that parsers may read differently is refused, not
// interpreted. Both doors use it: the MQTT payload (Decode), the message
// body and ext (validateMessage), and every HTTP request body (package api).

// MaxJSONDepth is how deeply arrays and objects may nest in a client's JSON
// (the top-level value counts as one level).
const MaxJSONDepth = 32

// CheckJSON reports whether b is one strict JSON value: valid UTF-8 and
// valid JSON with nothing after the value but white space, no object with
// a key twice (at any depth; keys compare after unescaping, so "a" and
// "\u0061" are the same key), no number that does not fit a float64 (such
// as 1e999999, which strict decoders refuse or turn into infinity), and no
// nesting deeper than MaxJSONDepth. The error is an *Error with code
// invalid whose message names the problem without echoing the input at
// length.
func CheckJSON(b []byte) error {
	_, err := walkJSON(b, false, false)
	return err
}

// CheckRequestJSON is CheckJSON for a document decoded into a Go struct (an
// HTTP request body, an MQTT payload): encoding/json matches struct fields
// without regard to case, so top-level keys that differ only in case (such
// as "to" and "To") would override each other and count as duplicates too.
func CheckRequestJSON(b []byte) error {
	_, err := walkJSON(b, true, false)
	return err
}

// CanonicalJSON checks raw with CheckJSON and returns the value re-encoded:
// compact, object keys sorted, strings with every escape resolved (HTML
// characters are not escaped), numbers as written. It is what the server
// stores of a client's free-form JSON, never the client's bytes.
func CanonicalJSON(raw []byte) ([]byte, error) {
	v, err := decodeStrict(raw)
	if err != nil {
		return nil, err
	}
	return encodeJSON(v)
}

// decodeStrict checks raw as CheckJSON does and, in the same pass, decodes
// it into Go values (map[string]any, []any, string, json.Number, bool,
// nil), as encoding/json with UseNumber would.
func decodeStrict(raw []byte) (any, error) {
	return walkJSON(raw, false, true)
}

// encodeJSON marshals v compactly, without HTML escaping.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, errorf(CodeInvalid, "value cannot be encoded as JSON")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// jsonFrame is one open array or object of the walk.
type jsonFrame struct {
	object  bool
	wantKey bool     // object: the next token is a key
	fold    bool     // object: keys compare folded (CheckRequestJSON's top level)
	keys    []string // object, when not building: its keys so far
	seen    map[string]struct{}
	// When building: the container's value, and the key of the value
	// being read.
	obj map[string]any
	arr []any
	key string
}

// keysLinear is how many keys an object may have before its duplicate
// check switches from a scan to a map.
const keysLinear = 16

// addKey records k in the object f and reports whether it was there.
func (f *jsonFrame) addKey(k string) bool {
	if f.fold {
		k = foldKey(k)
	}
	if f.obj != nil {
		_, dup := f.obj[k]
		f.key = k
		return dup
	}
	if f.seen != nil {
		if _, dup := f.seen[k]; dup {
			return true
		}
		f.seen[k] = struct{}{}
		return false
	}
	for _, old := range f.keys {
		if old == k {
			return true
		}
	}
	f.keys = append(f.keys, k)
	if len(f.keys) > keysLinear {
		f.seen = make(map[string]struct{}, 2*len(f.keys))
		for _, old := range f.keys {
			f.seen[old] = struct{}{}
		}
	}
	return false
}

// walkJSON is the one walk behind CheckJSON, CheckRequestJSON and
// decodeStrict: a Decoder.Token pass that checks as it goes and, when
// build, assembles the value.
func walkJSON(b []byte, foldTop, build bool) (any, error) {
	if !utf8.Valid(b) {
		return nil, errorf(CodeInvalid, "JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var frames [8]jsonFrame
	stack := frames[:0]
	var top any
	// put places a finished value in the innermost container (or at the top).
	put := func(v any) {
		n := len(stack)
		if n == 0 {
			top = v
			return
		}
		f := &stack[n-1]
		if !f.object {
			if build {
				f.arr = append(f.arr, v)
			}
			return
		}
		f.wantKey = true
		if build {
			f.obj[f.key] = v
		}
	}
	for started := false; !started || len(stack) > 0; started = true {
		t, err := dec.Token()
		if err != nil {
			return nil, jsonSyntaxError(err, started)
		}
		switch v := t.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) == MaxJSONDepth {
					return nil, errorf(CodeInvalid, "JSON nests deeper than %d levels", MaxJSONDepth)
				}
				// Reuse the key slice of an earlier container at this depth.
				if len(stack) < cap(stack) {
					stack = stack[:len(stack)+1]
				} else {
					stack = append(stack, jsonFrame{})
				}
				f := &stack[len(stack)-1]
				*f = jsonFrame{object: v == '{', wantKey: v == '{', keys: f.keys[:0], fold: foldTop && len(stack) == 1}
				if build {
					if f.object {
						f.obj = map[string]any{}
					} else {
						f.arr = []any{}
					}
				}
			default: // '}' or ']'
				f := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if f.object {
					put(f.obj)
				} else {
					put(f.arr)
				}
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				f := &stack[n-1]
				if f.addKey(v) {
					if f.fold {
						return nil, errorf(CodeInvalid, "JSON object has the key %s twice (keys that differ only in case count as the same key here)", quoteShort(v))
					}
					return nil, errorf(CodeInvalid, "JSON object has the key %s twice", quoteShort(v))
				}
				f.wantKey = false
				continue
			}
			put(v)
		case json.Number:
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				return nil, errorf(CodeInvalid, "JSON number out of range (ending at byte %d): numbers must fit a 64-bit float", dec.InputOffset())
			}
			put(v)
		default: // bool, nil
			put(v)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(CodeInvalid, "trailing data after the JSON value")
	}
	return top, nil
}

// jsonSyntaxError describes a Token error without echoing the input.
func jsonSyntaxError(err error, started bool) error {
	var se *json.SyntaxError
	switch {
	case err == io.EOF && !started:
		return errorf(CodeInvalid, "a JSON value is required")
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(CodeInvalid, "JSON ends too early")
	case errors.As(err, &se):
		return errorf(CodeInvalid, "JSON syntax error at byte %d", se.Offset)
	}
	return errorf(CodeInvalid, "malformed JSON")
}

// quoteShort quotes s for an error message, cut to 32 characters.
func quoteShort(s string) string {
	const max = 32
	if utf8.RuneCountInString(s) <= max {
		return strconv.Quote(s)
	}
	i, n := 0, 0
	for i = range s {
		if n == max {
			break
		}
		n++
	}
	return strconv.Quote(s[:i]) + "…"
}

// foldKey maps keys that encoding/json would match to the same struct field
// to one string (its foldName: ASCII upper case, other runes to the
// smallest rune of their Unicode fold set).
func foldKey(k string) string {
	plain := true
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= utf8.RuneSelf || ('a' <= c && c <= 'z') {
			plain = false
			break
		}
	}
	if plain {
		return k
	}
	var sb strings.Builder
	sb.Grow(len(k))
	for _, r := range k {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			sb.WriteByte(byte(r))
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// fieldError describes a type mismatch decoding into a struct without
// echoing the input or naming Go types; want maps JSON field names to what
// they must be.
func fieldError(err error, want map[string]string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return errorf(CodeInvalid, "the payload must be a JSON object")
		}
		field, _, _ := strings.Cut(te.Field, ".")
		if w, ok := want[field]; ok {
			return errorf(CodeInvalid, "field %q must be %s", field, w)
		}
		return errorf(CodeInvalid, "field %s has the wrong type", quoteShort(field))
	}
	return errorf(CodeInvalid, "malformed JSON")
}
