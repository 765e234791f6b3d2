package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mqim/mqim/internal/config"
)

func nest(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

// manyKeys is an object with n distinct keys k0..k(n-1), then extra.
func manyKeys(n int, extra string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + `_` + strings.Repeat("y", i/26) + `":1`)
	}
	b.WriteString(extra + "}")
	return b.String()
}

func TestCheckJSONAccepts(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `"s"`, `1`, `-0`, `true`, `null`, " \t\n{}\r\n ",
		`{"a":{"a":1},"b":{"a":2}}`,           // the same key in different objects
		`[{"a":1,"b":2},{"a":1,"b":2}]`,       // sibling objects at one depth
		`{"x":{"a":1},"y":[{"a":1}],"a":[1]}`, // a key of an inner object again outside it
		`{"a":1,"A":2}`,                       // different keys (only CheckRequestJSON folds)
		`1e308`, `-1.7976931348623157e308`, `1e-400`, `18446744073709551616`, `[0.1,1E5,-2e-3]`,
		`{"\u00e9":1,"é2":2}`,
		nest(MaxJSONDepth, ""), nest(MaxJSONDepth-1, `{"a":1}`),
		manyKeys(200, ""),
		`{"k":[` + manyKeys(40, "") + `,` + manyKeys(40, "") + `]}`,
	} {
		if err := CheckJSON([]byte(s)); err != nil {
			t.Errorf("CheckJSON(%.80q) = %v, want accepted", s, err)
		}
	}
}

func TestCheckJSONRefuses(t *testing.T) {
	long := strings.Repeat("k", 6000)
	for _, tc := range []struct{ in, want string }{
		{`{"body":{"text":"` + strings.Repeat("x", 6000) + `","text":"ok"}}`, `key "text" twice`},
		{`{"a":1,"a":1}`, "twice"},
		{`{"a":1,"\u0061":2}`, "twice"}, // keys compare unescaped
		{`[{"a":1},{"b":{"c":[{"d":1,"d":2}]}}]`, `"d" twice`},
		{`{"a":{"b":1},"a":{"c":1}}`, "twice"},
		{manyKeys(100, `,"ka_":2`), "twice"}, // past the linear scan
		{`{"` + long + `":1,"` + long + `":2}`, "twice"},
		{`{"lat":1e999999}`, "out of range"},
		{`-1e309`, "out of range"},
		{`[1,2,1e400]`, "out of range"},
		{nest(MaxJSONDepth+1, ""), "deeper than 32"},
		{`{"a":` + nest(MaxJSONDepth, "") + `}`, "deeper"},
		{strings.Repeat("[", 100000), "deeper"},
		{strings.Repeat(`{"a":`, 50000), "deeper"},
		{`{}{}`, "trailing"},
		{`{"a":1} x`, "trailing"},
		{``, "required"},
		{"  \n", "required"},
		{`{"a":`, "ends too early"},
		{`{"a" 1}`, "syntax error at byte"},
		{`{"a":1,}`, "syntax error"},
		{`[01]`, "syntax error"},
		{`NaN`, "syntax error"},
		{"{\"a\":\"\xff\"}", "UTF-8"},
		{"\ufeff{}", "syntax error"},
	} {
		err := CheckJSON([]byte(tc.in))
		e := AsError(err)
		if err == nil || e.Code != CodeInvalid {
			t.Errorf("CheckJSON(%.60q) = %v, want invalid", tc.in, err)
			continue
		}
		if !strings.Contains(e.Message, tc.want) {
			t.Errorf("CheckJSON(%.60q): message %q, want it to contain %q", tc.in, e.Message, tc.want)
		}
		if len(e.Message) > 200 {
			t.Errorf("CheckJSON(%.60q): message of %d bytes echoes the input", tc.in, len(e.Message))
		}
	}
}

// Top-level keys that encoding/json would bind to one struct field are
// duplicates for a request; deeper ones are free-form JSON and are not.
func TestCheckRequestJSONFoldsTopLevelKeys(t *testing.T) {
	for _, s := range []string{`{"to":"bob","To":"carol"}`, `{"kind":"msg","KIND":"read"}`, `{"ask":1,"aſk":2}`, `{"k":1,"\u212a":2}`, `{"a":1,"a":2}`} {
		if err := CheckRequestJSON([]byte(s)); AsError(err) == nil || AsError(err).Code != CodeInvalid {
			t.Errorf("CheckRequestJSON(%q) = %v, want invalid", s, err)
		}
		if strings.Count(s, `"a"`) != 2 && CheckJSON([]byte(s)) != nil {
			t.Errorf("CheckJSON(%q) refused keys that differ in case", s)
		}
	}
	for _, s := range []string{`{"body":{"a":1,"A":2}}`, `{"to":"bob","top":1}`, `[{"a":1},{"A":1}]`, `{"é":1,"É":2,"x":{"y":1}}`} {
		if strings.HasPrefix(s, `{"é"`) {
			// é and É fold together for encoding/json too.
			if CheckRequestJSON([]byte(s)) == nil {
				t.Errorf("CheckRequestJSON(%q) accepted é and É", s)
			}
			continue
		}
		if err := CheckRequestJSON([]byte(s)); err != nil {
			t.Errorf("CheckRequestJSON(%q) = %v", s, err)
		}
	}
	// The fold is encoding/json's: whatever it binds to one field, we count as one key.
	var v struct {
		Ask int `json:"ask"`
		K   int `json:"k"`
	}
	if err := json.Unmarshal([]byte(`{"aſk":2,"\u212a":3}`), &v); err != nil || v.Ask != 2 || v.K != 3 {
		t.Fatalf("encoding/json fold changed: %+v %v", v, err)
	}
}

func TestCanonicalJSON(t *testing.T) {
	for in, want := range map[string]string{
		` { "b" : [ 1 , 2.50, -0, 1E5 ] , "a" : "x<y&z\u00e9\n" } `: `{"a":"x<y&zé\n","b":[1,2.50,-0,1E5]}`,
		`"\ud800"`:                       `"` + "\uFFFD" + `"`, // a lone surrogate becomes U+FFFD, valid UTF-8 everywhere
		`[{"z":{},"y":[]},null,true]`:    `[{"y":[],"z":{}},null,true]`,
		`18446744073709551616`:           `18446744073709551616`,
		`{"k":"\u2028"}`:                 `{"k":"\u2028"}`,
		"{\"emoji\":\"\\ud83d\\ude00\"}": `{"emoji":"😀"}`,
	} {
		got, err := CanonicalJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("CanonicalJSON(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if again, err := CanonicalJSON(got); err != nil || string(again) != string(got) {
			t.Errorf("CanonicalJSON is not idempotent on %q: %q %v", got, again, err)
		}
	}
	if _, err := CanonicalJSON([]byte(`{"a":1,"a":2}`)); err == nil {
		t.Error("CanonicalJSON accepted a duplicate key")
	}
}

func TestDecodeStrictTopLevel(t *testing.T) {
	limits := config.Default().Chat
	for _, tc := range []struct{ name, payload, cid, want string }{
		{"duplicate kind", `{"cid":"c1","kind":"msg","kind":"read","seq":1}`, "c1", "twice"},
		{"duplicate cid", `{"cid":"c2","cid":"c3","type":"text","body":{"text":"x"}}`, "c2", "twice"},
		{"duplicate body", `{"cid":"c4","type":"text","body":{"text":"` + strings.Repeat("x", 6000) + `"},"body":{"text":"ok"}}`, "c4", "twice"},
		{"case duplicate", `{"cid":"c5","type":"text","body":{"text":"a"},"Body":{"text":"b"}}`, "c5", "twice"},
		{"duplicate in body", `{"cid":"c6","type":"text","body":{"text":"a","text":"b"}}`, "c6", "twice"},
		{"infinite", `{"cid":"c7","type":"location","body":{"lat":1e999999,"lng":0}}`, "c7", "out of range"},
		{"deep ext", `{"cid":"c8","type":"text","body":{"text":"a"},"ext":` + nest(40, "") + `}`, "c8", "deeper"},
		{"trailing", `{"cid":"c9"} {}`, "c9", "trailing"},
		{"cid number", `{"cid":5,"type":"text","body":{"text":"a"}}`, "", `"cid" must be a string`},
		{"mentions string", `{"cid":"m1","type":"text","body":{"text":"a"},"mentions":"x"}`, "m1", `"mentions" must be an array`},
		{"mentions numbers", `{"cid":"m2","type":"text","body":{"text":"a"},"mentions":[1]}`, "m2", `"mentions" must be an array`},
		{"type number", `{"cid":"m3","type":1,"body":{"text":"a"}}`, "m3", `"type" must be a string`},
		{"kind object", `{"cid":"m4","kind":{}}`, "m4", `"kind" must be a string`},
		{"seq string", `{"cid":"m5","kind":"read","seq":"3"}`, "m5", `"seq" must be an integer`},
		{"seq fraction", `{"kind":"read","seq":1.5}`, "", `"seq" must be an integer`},
		{"seq too big", `{"kind":"read","seq":18446744073709551616}`, "", `"seq" must be an integer`},
		{"reply_to number", `{"cid":"m6","type":"text","body":{"text":"a"},"reply_to":7}`, "m6", `"reply_to" must be`},
	} {
		in, err := Decode([]byte(tc.payload), limits)
		e := AsError(err)
		if e == nil || e.Code != CodeInvalid {
			t.Errorf("%s: Decode = %+v, %v; want invalid", tc.name, in, err)
			continue
		}
		if !strings.Contains(e.Message, tc.want) || len(e.Message) > 200 {
			t.Errorf("%s: message %q, want it to contain %q", tc.name, e.Message, tc.want)
		}
		if in == nil || in.CID != tc.cid {
			t.Errorf("%s: cid %+v, want %q", tc.name, in, tc.cid)
		}
	}
	// null is absent, as before.
	if in, err := Decode([]byte(`{"kind":null,"cid":null,"type":"text","body":{"text":"a"},"mentions":null,"ext":null}`), limits); err != nil || in.Kind != KindMsg {
		t.Errorf("nulls: %+v %v", in, err)
	}
}

// send runs the message validation of both doors on a draft.
func validated(t *testing.T, typ, body, ext string) (*Draft, error) {
	t.Helper()
	d := &Draft{From: "alice", To: "bob", Type: typ, Body: json.RawMessage(body)}
	if ext != "" {
		d.Ext = json.RawMessage(ext)
	}
	return d, validateMessage(d, config.Default().Chat, false)
}

func TestValidateMessageStrict(t *testing.T) {
	for _, tc := range []struct{ typ, body, ext, want string }{
		{"text", `{"text":"` + strings.Repeat("x", 6000) + `","text":"ok"}`, "", "twice"},
		{"location", `{"lat":1e999999,"lng":0}`, "", "out of range"},
		{"location", `{"lat":90.0001,"lng":0}`, "", "body.lat must be from -90 to 90"},
		{"location", `{"lat":-91,"lng":0}`, "", "body.lat"},
		{"location", `{"lat":0,"lng":180.5}`, "", "body.lng must be from -180 to 180"},
		{"location", `{"lat":0,"lng":-181}`, "", "body.lng"},
		{"location", `{"lat":"1","lng":0}`, "", "body.lat must be a number"},
		{"location", `{"lng":0}`, "", "body.lat is required"},
		{"image", `{"url":"u","width":-1}`, "", "body.width must be an integer"},
		{"image", `{"url":"u","height":1.5}`, "", "body.height must be an integer"},
		{"image", `{"url":"u","size":"10"}`, "", "body.size must be a number"},
		{"image", `{"url":"u","size":9007199254740992}`, "", "body.size must be an integer from 0 to 9007199254740991"},
		{"image", `{"url":5}`, "", "body.url must be a string"},
		{"file", `{"url":"u","name":"n","size":1e308}`, "", "body.size"},
		{"audio", `{"url":"u","duration":-0.5}`, "", "body.duration must not be negative"},
		{"audio", `{"url":"u"}`, "", "body.duration is required"},
		{"video", `{"url":"u","duration":[]}`, "", "body.duration must be a number"},
		{"video", `{"url":"u","thumb":1}`, "", "body.thumb must be a string"},
		{"card", `{"user_id":1}`, "", "body.user_id must be a string"},
		{"text", `"hi"`, "", "body must be a JSON object"},
		{"text", `null`, "", "body is required"},
		{"custom", `null`, "", "body is required"},
		{"custom", `{"a":[{"b":1,"b":2}]}`, "", "twice"},
		{"custom", nest(33, ""), "", "deeper"},
		{"text", `{"text":"a"}`, `{"k":1,"k":2}`, "ext: JSON object has the key \"k\" twice"},
		{"text", `{"text":"a"}`, `[1e999]`, "ext: JSON number out of range"},
		{"text", `{"text":"a"}`, "{\"k\":\"\xff\"}", "ext: JSON is not valid UTF-8"},
	} {
		_, err := validated(t, tc.typ, tc.body, tc.ext)
		e := AsError(err)
		if e == nil || e.Code != CodeInvalid || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s %.60s ext %.30s: %v, want invalid containing %q", tc.typ, tc.body, tc.ext, err, tc.want)
		}
	}
}

// What is stored is the validated value re-encoded, never the raw bytes.
func TestValidateMessageReencodes(t *testing.T) {
	for _, tc := range []struct{ typ, body, ext, wantBody, wantExt string }{
		{"text", " {\n \"z\" : 1 , \"text\" : \"a<b \\u00e9\" } ", "", `{"text":"a<b é","z":1}`, ""},
		{"location", `{"name":"Eiffel","lng":2.29450,"lat":48.8584}`, "", `{"lat":48.8584,"lng":2.2945,"name":"Eiffel"}`, ""},
		{"location", `{"lat":-90,"lng":180}`, "", `{"lat":-90,"lng":180}`, ""},
		{"location", `{"lat":-0,"lng":-0.0}`, "", `{"lat":0,"lng":0}`, ""},
		{"image", `{"url":"u","width":1e3,"height":720.0,"size":0}`, "", `{"height":720,"size":0,"url":"u","width":1000}`, ""},
		{"image", `{"url":"u","size":9007199254740991}`, "", `{"size":9007199254740991,"url":"u"}`, ""},
		{"audio", `{"url":"u","duration":4.20}`, "", `{"duration":4.2,"url":"u"}`, ""},
		{"video", `{"url":"u","duration":null}`, "", `{"duration":null,"url":"u"}`, ""},
		{"custom", ` [ 1 , {"b":1, "a":[ ]} ] `, ` { "y" : 2 , "x" : 1 } `, `[1,{"a":[],"b":1}]`, `{"x":1,"y":2}`},
		{"custom", `"just a string"`, `null`, `"just a string"`, ""},
		{"custom", `12345678901234567890123`, `"e"`, `12345678901234567890123`, `"e"`},
	} {
		d, err := validated(t, tc.typ, tc.body, tc.ext)
		if err != nil {
			t.Errorf("%s %s: %v", tc.typ, tc.body, err)
			continue
		}
		if string(d.Body) != tc.wantBody || string(d.Ext) != tc.wantExt {
			t.Errorf("%s %s / %s: stored %s / %s, want %s / %s", tc.typ, tc.body, tc.ext, d.Body, d.Ext, tc.wantBody, tc.wantExt)
		}
	}
}

// The check runs on every MQTT publish: it must stay cheap.
func BenchmarkCheckRequestJSON(b *testing.B) {
	p := []byte(`{"kind":"msg","cid":"c-7f3a","type":"text","body":{"text":"lunch at 12?"},"reply_to":"01JE0B7M3Q8K2V5T9X4N6R1PZC","mentions":["bob"],"ext":{"client":"ios-3.2"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckRequestJSON(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeValidate is the MQTT door's share of a send: decode the
// payload and validate the message.
func BenchmarkDecodeValidate(b *testing.B) {
	p := []byte(`{"kind":"msg","cid":"c-7f3a","type":"text","body":{"text":"lunch at 12?"},"reply_to":"01JE0B7M3Q8K2V5T9X4N6R1PZC","mentions":["bob"],"ext":{"client":"ios-3.2"}}`)
	limits := config.Default().Chat
	b.ReportAllocs()
	for b.Loop() {
		in, err := Decode(p, limits)
		if err != nil {
			b.Fatal(err)
		}
		d := &Draft{From: "alice", To: "bob", CID: in.CID, Type: in.Type, Body: in.Body, ReplyTo: in.ReplyTo, Mentions: in.Mentions, Ext: in.Ext}
		if err := validateMessage(d, limits, false); err != nil {
			b.Fatal(err)
		}
	}
}

// The scanner's own edges: where errors point, numbers at the float64
// boundary (decided by the exponent alone or by ParseFloat), and keys past
// the linear scan (hash sets, reused by sibling objects).
func TestScanJSONEdges(t *testing.T) {
	zeros := func(n int) string { return strings.Repeat("0", n) }
	for _, tc := range []struct{ in, want string }{
		{`{"a" 1}`, "syntax error at byte 5"},
		{`[1,]`, "syntax error at byte 3"},
		{`"ab\x"`, "syntax error at byte 4"},
		{`[1.x]`, "syntax error at byte 3"},
		{`{"a":tru }`, "syntax error at byte 8"},
		{"\"a\x01\"", "syntax error at byte 2"},
		{`["\u12x4"]`, "syntax error at byte 6"},
		{`[1,1e400]`, "out of range (ending at byte 8)"},
		{`1.7976931348623159e308`, "out of range"},
		{`-0.1e310`, "out of range"},
		{`1e99999999999999999999999`, "out of range"},
		{"1" + zeros(309), "out of range"},
		{"[1.0e2" + zeros(400), "out of range"}, // complete at the end of the input
		{"-", "ends too early"},
		{"[1e+", "ends too early"},
		{`["\u00`, "ends too early"},
		{`[` + manyKeys(30, "") + `,` + manyKeys(30, `,"kd_":0`) + `]`, `"kd_" twice`},
		{manyKeys(30, `,"\u006bd_":0`), `"kd_" twice`},
	} {
		err := CheckJSON([]byte(tc.in))
		if e := AsError(err); e == nil || !strings.Contains(e.Message, tc.want) {
			t.Errorf("CheckJSON(%.60q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	for _, s := range []string{
		`1.7976931348623157e308`, `-1.7976931348623157e308`, "17976931348623157" + zeros(292), "1" + zeros(308),
		`0e999999`, `-0.0e99999999999999999999`, "0." + zeros(5) + "1e310", `1e-99999999999999999999999`, `0.1e309`,
		"[" + zeros(1) + "," + "9" + zeros(307) + "]",
		`[` + manyKeys(30, "") + `,` + manyKeys(30, "") + `,` + manyKeys(30, "") + `]`,
	} {
		if err := CheckJSON([]byte(s)); err != nil {
			t.Errorf("CheckJSON(%.60q) = %v, want accepted", s, err)
		}
	}
	// Top-level keys fold in the hash set too.
	if err := CheckRequestJSON([]byte(manyKeys(30, `,"KA_":0`))); err == nil || !strings.Contains(err.Error(), "differ only in case") {
		t.Errorf("CheckRequestJSON: %v, want a folded duplicate", err)
	}
	// A set whose generation wraps forgets its slots rather than matching
	// them (their indexes would not even be keys of this scan).
	s := &jsonScan{b: []byte(manyKeys(30, ""))}
	s.sets[0].gen = ^uint32(0)
	s.sets[0].slots = make([]uint64, 128)
	for i := range s.sets[0].slots {
		s.sets[0].slots[i] = 1<<32 | 1000
	}
	if err := s.run(false); err != nil || s.sets[0].gen != 1 {
		t.Errorf("after a wrap: %v, generation %d", err, s.sets[0].gen)
	}
}

// refWalkJSON is the Decoder.Token walk that the strict rules first ran
// on, kept unchanged as the reference the scanner is fuzzed against
// (FuzzStrictMatchesReference): same accept/reject, same messages, same
// canonical form.
func refWalkJSON(b []byte, foldTop, build bool) (any, error) {
	if !utf8.Valid(b) {
		return nil, errorf(CodeInvalid, "JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var frames [8]refJSONFrame
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
			return nil, refJSONSyntaxError(err, started)
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
					stack = append(stack, refJSONFrame{})
				}
				f := &stack[len(stack)-1]
				*f = refJSONFrame{object: v == '{', wantKey: v == '{', keys: f.keys[:0], fold: foldTop && len(stack) == 1}
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

// refJSONFrame is one open array or object of refWalkJSON.
type refJSONFrame struct {
	object  bool
	wantKey bool
	fold    bool
	keys    []string
	seen    map[string]struct{}
	obj     map[string]any
	arr     []any
	key     string
}

func (f *refJSONFrame) addKey(k string) bool {
	if f.fold {
		k = refFoldKey(k)
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
	if len(f.keys) > 16 {
		f.seen = make(map[string]struct{}, 2*len(f.keys))
		for _, old := range f.keys {
			f.seen[old] = struct{}{}
		}
	}
	return false
}

func refJSONSyntaxError(err error, started bool) error {
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

func refFoldKey(k string) string {
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

// refCanonicalJSON is CanonicalJSON on the reference walk.
func refCanonicalJSON(b []byte) ([]byte, error) {
	v, err := refWalkJSON(b, false, true)
	if err != nil {
		return nil, err
	}
	return encodeJSON(v)
}

// zerosArray is `[0,0,...,0]` of about n bytes: the cheapest document to
// send and, token by token, the most expensive to check.
func zerosArray(n int) []byte {
	b := make([]byte, 0, n+1)
	b = append(b, '[', '0')
	for len(b) < n-1 {
		b = append(b, ",0"...)
	}
	return append(b, ']')
}

// realisticPayload is an MQTT custom message of about n bytes: a body of
// records with short and long strings (some escaped, some not ASCII),
// integers, fractions, booleans, nulls and small nested arrays, and an ext.
func realisticPayload(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"msg","cid":"c-7f3a-0001","type":"custom","reply_to":"01JE0B7M3Q8K2V5T9X4N6R1PZC","mentions":["bob","carol"],"body":{"schema":"order.v2","items":[`)
	for i := 0; b.Len() < n-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"sku":"SKU-%06d","title":"Caf\u00e9 cr\u00e8me \"grande\" n°%d — extra hot","qty":%d,"price":%d.%02d,"tags":["hot","dairy","%c"],"gift":%t,"note":null,"lat":48.85%04d,"lng":-2.29%04d}`,
			i, i*7919%1000000, i, i%5+1, i%90+1, i%100, 'a'+rune(i%26), i%3 == 0, i%10000, i*31%10000)
	}
	b.WriteString(`]},"ext":{"client":"ios-3.2","trace":"a1b2c3d4e5f6"}}`)
	return b.Bytes()
}

// BenchmarkStrictLarge measures the strict check on large inputs: a 1 MiB
// HTTP body of `[0,0,...]` (what an unauthenticated POST /v1/login may
// send) and a 64 KiB MQTT payload, with json.Unmarshal for scale.
func BenchmarkStrictLarge(b *testing.B) {
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"zeros-1MiB", zerosArray(1 << 20)},
		{"payload-64KiB", realisticPayload(64 << 10)},
	} {
		if err := CheckRequestJSON(in.data); err != nil {
			b.Fatalf("%s: %v", in.name, err)
		}
		b.Run(in.name+"/CheckJSON", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := CheckJSON(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/CheckRequestJSON", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := CheckRequestJSON(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/CanonicalJSON", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CanonicalJSON(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/json.Unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				var v any
				if err := json.Unmarshal(in.data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
