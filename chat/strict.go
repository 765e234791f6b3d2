package chat

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
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
	return scanJSON(b, false)
}

// CheckRequestJSON is CheckJSON for a document decoded into a Go struct (an
// HTTP request body, an MQTT payload): encoding/json matches struct fields
// without regard to case, so top-level keys that differ only in case (such
// as "to" and "To") would override each other and count as duplicates too.
func CheckRequestJSON(b []byte) error {
	return scanJSON(b, true)
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

// decodeStrict checks raw as CheckJSON does and then decodes it into Go
// values (map[string]any, []any, string, json.Number, bool, nil), as
// encoding/json with UseNumber does.
func decodeStrict(raw []byte) (any, error) {
	if err := scanJSON(raw, false); err != nil {
		return nil, err
	}
	v, _ := buildJSON(raw, skipSpace(raw, 0))
	return v, nil
}

// buildJSON decodes the value that begins at b[i], in a document scanJSON
// accepted, and returns it with the index after it.
func buildJSON(b []byte, i int) (any, int) {
	switch b[i] {
	case '{':
		obj := map[string]any{}
		i = skipSpace(b, i+1)
		if b[i] == '}' {
			return obj, i + 1
		}
		for {
			var k string
			k, i = buildString(b, i)
			i = skipSpace(b, skipSpace(b, i)+1) // the colon
			obj[k], i = buildJSON(b, i)
			i = skipSpace(b, i)
			if b[i] == '}' {
				return obj, i + 1
			}
			i = skipSpace(b, i+1) // the comma
		}
	case '[':
		arr := []any{}
		i = skipSpace(b, i+1)
		if b[i] == ']' {
			return arr, i + 1
		}
		for {
			var v any
			v, i = buildJSON(b, i)
			arr = append(arr, v)
			i = skipSpace(b, i)
			if b[i] == ']' {
				return arr, i + 1
			}
			i = skipSpace(b, i+1)
		}
	case '"':
		return buildString(b, i)
	case 't':
		return true, i + 4
	case 'f':
		return false, i + 5
	case 'n':
		return nil, i + 4
	}
	j := i + 1
	for j < len(b) && (isDigit(b[j]) || b[j] == '.' || b[j]|0x20 == 'e' || b[j] == '+' || b[j] == '-') {
		j++
	}
	return json.Number(b[i:j]), j
}

// buildString decodes the string that begins at b[i], in a document
// scanJSON accepted.
func buildString(b []byte, i int) (string, int) {
	end, esc, _ := scanString(b, i)
	if !esc {
		return string(b[i+1 : end-1]), end
	}
	return string(appendUnquoted(nil, b[i+1:end-1])), end
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

// The scanner behind CheckJSON, CheckRequestJSON and decodeStrict: one
// pass over the bytes that allocates nothing for a document of ordinary
// size. It refuses exactly what a Decoder.Token walk refuses, with the
// same messages (FuzzStrictMatchesReference holds it to that walk); a
// syntax error's offset is that of the first byte no JSON document could
// continue with.

// keysLinear is how many keys an object may have before its duplicate
// check switches from a scan to a hash set.
const keysLinear = 16

// jsonScan is the state of one scan.
type jsonScan struct {
	b []byte
	// keys holds the keys of every open object, innermost last; each
	// frame knows where its own begin. A key is a range of b when it has
	// no escapes, otherwise (and at a folded top level) of arena, where
	// it is written unescaped (and folded).
	keys   []keyRef
	arena  []byte
	frames [MaxJSONDepth]jsonFrame
	// sets[d] is the hash set of the object at depth d, once it has more
	// than keysLinear keys; it is reused by later objects at that depth.
	sets   [MaxJSONDepth]keySet
	hashed bool // a set was used since the state left scanPool
}

// jsonFrame is one open array or object.
type jsonFrame struct {
	object     bool
	fold       bool // keys compare folded (CheckRequestJSON's top level)
	hashed     bool // keys are in the frame's keySet too
	keyStart   int  // index of the frame's first key in keys
	arenaStart int  // length of arena when the frame opened
}

// keyRef is one key: b[off:end], or arena[off:end].
type keyRef struct {
	off, end int
	arena    bool
}

func (s *jsonScan) key(r keyRef) []byte {
	if r.arena {
		return s.arena[r.off:r.end]
	}
	return s.b[r.off:r.end]
}

func errEarly() error { return errorf(CodeInvalid, "JSON ends too early") }

// errAt is the error of a scan that stopped at byte i: the end of the
// input, or a byte that no JSON document could continue with.
func errAt(b []byte, i int) error {
	if i >= len(b) {
		return errEarly()
	}
	return errorf(CodeInvalid, "JSON syntax error at byte %d", i)
}

// scanJSON checks b by the strict rules (see CheckJSON); foldTop makes the
// keys of a top-level object compare folded (see CheckRequestJSON).
func scanJSON(b []byte, foldTop bool) error {
	if !utf8.Valid(b) {
		return errorf(CodeInvalid, "JSON is not valid UTF-8")
	}
	s := scanPool.Get().(*jsonScan)
	s.b = b
	err := s.run(foldTop)
	s.release()
	return err
}

// scanPool keeps scan states, so that a scan allocates nothing: the key
// stack, arena and hash sets of one are reused by the next, unless a large
// document made them larger than an ordinary one needs.
var scanPool = sync.Pool{New: func() any {
	return &jsonScan{keys: make([]keyRef, 0, 32), arena: make([]byte, 0, 256)}
}}

// release returns s to scanPool.
func (s *jsonScan) release() {
	const maxKeys, maxArena, maxSlots = 1024, 16 << 10, 4096
	s.b = nil
	if cap(s.keys) > maxKeys {
		s.keys = make([]keyRef, 0, 32)
	}
	if cap(s.arena) > maxArena {
		s.arena = make([]byte, 0, 256)
	}
	s.keys, s.arena = s.keys[:0], s.arena[:0]
	if s.hashed {
		s.hashed = false
		for d := range s.sets {
			if len(s.sets[d].slots) > maxSlots {
				s.sets[d].slots = nil
			}
		}
	}
	scanPool.Put(s)
}

func (s *jsonScan) run(foldTop bool) error {
	b := s.b
	n := len(b)
	depth := 0
	i := skipSpace(b, 0)
	if i == n {
		return errorf(CodeInvalid, "a JSON value is required")
	}
	for {
		// b[i] is the first byte of a value.
		var ok bool
		switch c := b[i]; c {
		case '{', '[':
			if depth == MaxJSONDepth {
				return errorf(CodeInvalid, "JSON nests deeper than %d levels", MaxJSONDepth)
			}
			f := &s.frames[depth]
			*f = jsonFrame{object: c == '{', fold: foldTop && depth == 0, keyStart: len(s.keys), arenaStart: len(s.arena)}
			depth++
			if i = skipSpace(b, i+1); i == n {
				return errEarly()
			}
			if b[i] == c+2 { // '}' or ']'
				i++
				depth--
				break
			}
			if c == '{' {
				var err error
				if i, err = s.member(i, depth-1); err != nil {
					return err
				}
			}
			continue
		case '"':
			if i, _, ok = scanString(b, i); !ok {
				return errAt(b, i)
			}
		case 't':
			if i, ok = scanLiteral(b, i, "true"); !ok {
				return errAt(b, i)
			}
		case 'f':
			if i, ok = scanLiteral(b, i, "false"); !ok {
				return errAt(b, i)
			}
		case 'n':
			if i, ok = scanLiteral(b, i, "null"); !ok {
				return errAt(b, i)
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return errAt(b, i)
			}
			// Inline, the common number: digits, with no leading zero,
			// no fraction or exponent, and too few to overflow.
			j := i
			for j < n && isDigit(b[j]) {
				j++
			}
			if j > i && j-i <= 308 && (c != '0' || j == i+1) && (j == n || b[j] != '.' && b[j]|0x20 != 'e') {
				i = j
				break
			}
			var err error
			if i, err = scanNumber(b, i); err != nil {
				return err
			}
		}
		// A value ends at b[i]: close the containers it ends, up to the
		// next value.
		for {
			i = skipSpace(b, i)
			if depth == 0 {
				if i != n {
					return errorf(CodeInvalid, "trailing data after the JSON value")
				}
				return nil
			}
			if i == n {
				return errEarly()
			}
			f := &s.frames[depth-1]
			c := b[i]
			if c == ',' {
				if i = skipSpace(b, i+1); i == n {
					return errEarly()
				}
				if f.object {
					var err error
					if i, err = s.member(i, depth-1); err != nil {
						return err
					}
				}
				break
			}
			if f.object && c == '}' {
				s.keys = s.keys[:f.keyStart]
				s.arena = s.arena[:f.arenaStart]
			} else if f.object || c != ']' {
				return errAt(b, i)
			}
			i++
			depth--
		}
	}
}

// member reads the key at b[i] of the object at depth d and the colon after
// it, and returns the index of the first byte of the value.
func (s *jsonScan) member(i, d int) (int, error) {
	b := s.b
	if b[i] != '"' {
		return 0, errAt(b, i)
	}
	end, esc, ok := scanString(b, i)
	if !ok {
		return 0, errAt(b, end)
	}
	if err := s.addKey(i+1, end-1, esc, d); err != nil {
		return 0, err
	}
	if i = skipSpace(b, end); i == len(b) {
		return 0, errEarly()
	}
	if b[i] != ':' {
		return 0, errAt(b, i)
	}
	if i = skipSpace(b, i+1); i == len(b) {
		return 0, errEarly()
	}
	return i, nil
}

// addKey records the key b[off:end] (the bytes between its quotes; esc if
// it has escapes) in the object at depth d, or refuses it if the object has
// it already.
func (s *jsonScan) addKey(off, end int, esc bool, d int) error {
	f := &s.frames[d]
	r := keyRef{off: off, end: end}
	if esc || f.fold {
		r = s.arenaKey(off, end, esc, f.fold)
	}
	s.keys = append(s.keys, r)
	if f.hashed {
		if s.sets[d].add(s, f.keyStart, len(s.keys)-1) {
			return s.dupKey(off, end, esc, f.fold)
		}
		return nil
	}
	k := s.key(r)
	keys := s.keys[f.keyStart : len(s.keys)-1]
	for _, old := range keys {
		if old.end-old.off == len(k) && bytes.Equal(s.key(old), k) {
			return s.dupKey(off, end, esc, f.fold)
		}
	}
	if len(keys) == keysLinear {
		f.hashed = true
		s.sets[d].reset(s, f.keyStart)
	}
	return nil
}

// arenaKey writes the key b[off:end] to the arena as it compares:
// unescaped if esc, folded if fold.
func (s *jsonScan) arenaKey(off, end int, esc, fold bool) keyRef {
	a := len(s.arena)
	k := s.b[off:end]
	switch {
	case !esc:
		s.arena = appendFold(s.arena, k)
	case !fold:
		s.arena = appendUnquoted(s.arena, k)
	default:
		// Unescape, fold after it (appendFold must not write over what
		// it reads), and move the folded key down.
		s.arena = appendUnquoted(s.arena, k)
		m := len(s.arena)
		s.arena = appendFold(s.arena, s.arena[a:m])
		s.arena = s.arena[:a+copy(s.arena[a:], s.arena[m:])]
	}
	return keyRef{off: a, end: len(s.arena), arena: true}
}

// dupKey is the error for the key b[off:end] seen twice.
func (s *jsonScan) dupKey(off, end int, esc, fold bool) error {
	name := s.b[off:end]
	if esc {
		name = appendUnquoted(nil, name)
	}
	if fold {
		return errorf(CodeInvalid, "JSON object has the key %s twice (keys that differ only in case count as the same key here)", quoteShort(string(name)))
	}
	return errorf(CodeInvalid, "JSON object has the key %s twice", quoteShort(string(name)))
}

// keySeed seeds the hash of keySet, so that which keys collide cannot be
// chosen by a client.
var keySeed = maphash.MakeSeed()

// keySet is a hash set of the keys of one object (indexes into
// jsonScan.keys, fewer than 2^32), by open addressing with linear probing.
// A slot holds gen<<32 | index+1; a slot of another generation (an earlier
// object at the same depth) is empty, so reuse needs no clearing.
type keySet struct {
	slots []uint64
	gen   uint32
	n     int
}

// reset empties the set and fills it with keys[start:].
func (ks *keySet) reset(s *jsonScan, start int) {
	s.hashed = true
	if ks.gen++; ks.gen == 0 { // wrapped: old slots could match again
		clear(ks.slots)
		ks.gen = 1
	}
	ks.n = 0
	if need := 4 * (len(s.keys) - start); len(ks.slots) < need {
		size := 64 // a power of two, as insert's mask wants
		for size < need {
			size *= 2
		}
		ks.slots = make([]uint64, size)
	}
	for i := start; i < len(s.keys); i++ {
		ks.insert(s, i)
	}
}

// add inserts keys[i], the newest key of the object whose keys begin at
// start, and reports whether the set had it already.
func (ks *keySet) add(s *jsonScan, start, i int) bool {
	if 2*(ks.n+1) > len(ks.slots) {
		ks.slots = make([]uint64, 2*len(ks.slots))
		ks.n = 0
		for j := start; j < i; j++ {
			ks.insert(s, j)
		}
	}
	return ks.insert(s, i)
}

// insert puts keys[i] in the set unless an equal key is there, and reports
// whether one was.
func (ks *keySet) insert(s *jsonScan, i int) bool {
	k := s.key(s.keys[i])
	mask := uint64(len(ks.slots) - 1)
	for h := maphash.Bytes(keySeed, k) & mask; ; h = (h + 1) & mask {
		e := ks.slots[h]
		if uint32(e>>32) != ks.gen {
			ks.slots[h] = uint64(ks.gen)<<32 | uint64(i+1)
			ks.n++
			return false
		}
		if bytes.Equal(s.key(s.keys[int(e&0xffffffff)-1]), k) {
			return true
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString scans the string that begins at b[i] (a quote) and returns the
// index after its closing quote and whether it has escapes; when not ok,
// the index is where it fails (len(b) if it ends too early).
func scanString(b []byte, i int) (end int, esc, ok bool) {
	j := i + 1
	for {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character. Each test flags the lowest such byte of the
		// word exactly (no borrow reaches it) and no other byte that is
		// not one (&^x keeps only ASCII bytes), so the byte loop below
		// stops in the word that broke this loop.
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			const ones, highs = 0x0101010101010101, 0x8080808080808080
			q, bs := x^(ones*'"'), x^(ones*'\\')
			if ((x-ones*0x20)|(q-ones)|(bs-ones))&^x&highs != 0 {
				break
			}
			j += 8
		}
		for j < len(b) && strPlain[b[j]] {
			j++
		}
		if j == len(b) {
			return j, esc, false
		}
		switch b[j] {
		case '"':
			return j + 1, esc, true
		case '\\':
			esc = true
			j++
			if j == len(b) {
				return j, esc, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				j++
				for k := 0; k < 4; k++ {
					if j == len(b) || hexVal(b[j]) < 0 {
						return j, esc, false
					}
					j++
				}
			default:
				return j, esc, false
			}
		default: // a control character
			return j, esc, false
		}
	}
}

// strPlain tells the bytes that stand for themselves in a JSON string.
var strPlain = func() (t [256]bool) {
	for c := ' '; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// scanLiteral scans lit (true, false or null) at b[i], whose first byte
// matched, and returns the index after it; when not ok, where it fails.
func scanLiteral(b []byte, i int, lit string) (int, bool) {
	for k := 1; k < len(lit); k++ {
		if i+k == len(b) || b[i+k] != lit[k] {
			return i + k, false
		}
	}
	return i + len(lit), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber scans the number at b[i] (a minus or a digit) by the JSON
// grammar and returns the index after it. A number is parsed only when its
// magnitude might not fit a float64: one below 1e308 is accepted on its
// decimal exponent alone, one of 1e309 or more refused on it.
func scanNumber(b []byte, i int) (int, error) {
	n := len(b)
	j := i
	if b[j] == '-' {
		if j++; j == n {
			return 0, errEarly()
		}
	}
	intStart := j
	switch c := b[j]; {
	case c == '0':
		j++
	case '1' <= c && c <= '9':
		for j++; j < n && isDigit(b[j]); j++ {
		}
	default:
		return 0, errAt(b, j)
	}
	intEnd := j
	fracStart, fracEnd := j, j
	if j < n && b[j] == '.' {
		j++
		fracStart = j
		if j == n || !isDigit(b[j]) {
			return 0, errAt(b, j)
		}
		for j++; j < n && isDigit(b[j]); j++ {
		}
		fracEnd = j
	}
	exp := 0
	if j < n && b[j]|0x20 == 'e' {
		j++
		neg := false
		if j < n && (b[j] == '+' || b[j] == '-') {
			neg = b[j] == '-'
			j++
		}
		if j == n || !isDigit(b[j]) {
			return 0, errAt(b, j)
		}
		for ; j < n && isDigit(b[j]); j++ {
			if exp < 1<<40 { // saturate: past 2^40 only the sign matters
				exp = exp*10 + int(b[j]-'0')
			}
		}
		if neg {
			exp = -exp
		}
	} else if intEnd-intStart <= 308 {
		return j, nil // the common case: an integer or fraction below 1e308
	}
	// The decimal exponent of the first significant digit.
	var mag int
	if b[intStart] != '0' {
		mag = intEnd - intStart - 1
	} else {
		k := fracStart
		for k < fracEnd && b[k] == '0' {
			k++
		}
		if k == fracEnd {
			return j, nil // zero, whatever the exponent
		}
		mag = fracStart - k - 1
	}
	mag += exp
	if mag < 308 {
		return j, nil
	}
	if mag == 308 {
		if _, err := strconv.ParseFloat(string(b[i:j]), 64); err == nil {
			return j, nil
		}
	}
	return 0, errorf(CodeInvalid, "JSON number out of range (ending at byte %d): numbers must fit a 64-bit float", j)
}

// appendUnquoted appends the JSON string content s (the bytes between the
// quotes, already scanned) with its escapes resolved as encoding/json
// resolves them: a surrogate not in a valid pair becomes U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+j]...)
		i += j
		c := s[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hex4(s[i+2:])
				}
				if p := utf16.DecodeRune(r, r2); p != unicode.ReplacementChar {
					r = p
					i += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

// hex4 is the value of the four hex digits that begin h.
func hex4(h []byte) rune {
	return rune(hexVal(h[0])<<12 | hexVal(h[1])<<8 | hexVal(h[2])<<4 | hexVal(h[3]))
}

// appendFold appends k mapped as encoding/json matches keys to struct
// fields (its foldName): ASCII upper case, other runes to the smallest rune
// of their Unicode fold set. Keys that encoding/json would bind to one
// field fold to the same bytes.
func appendFold(dst, k []byte) []byte {
	for i := 0; i < len(k); {
		c := k[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(k[i:])
		i += size
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
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
