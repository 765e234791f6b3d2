package chat

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mqim/mqim/internal/config"
)

// FuzzDecode feeds arbitrary client payloads through the decoder and the
// message validation: nothing may panic, every refusal is a coded *Error,
// an accepted text message carries exactly the bytes that were sent, and
// what would be stored (body, ext) is strict JSON in its canonical form,
// decoded from a payload that is itself strict.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"hi", "", "{", "{}", `{"kind":"msg","cid":"c1","type":"text","body":{"text":"hi"}}`,
		`{"kind":"read","seq":3}`, `{"kind":"typing"}`, `{"kind":"recall","id":"01ABC"}`,
		`{"type":"image","body":{"url":"https://x/y.png","width":10,"height":20}}`,
		`{"type":"location","body":{"lat":1.5,"lng":-3}}`, `{"type":"custom","body":[1,2,3]}`,
		`{"cid":"x","type":"text","body":`, "\xff\xfe", `{"type":"card","body":{"user_id":"bob"}}`,
		`{"mentions":["all","bob"],"type":"text","body":{"text":"@all"},"ext":{"a":1}}`,
		`  {"kind":"msg"} trailing`, `{"cid":` + strings.Repeat("[", 100),
		`{"type":"text","body":{"text":"long","text":"ok"}}`, `{"kind":"msg","kind":"read","seq":1}`,
		`{"type":"location","body":{"lat":1e999999,"lng":0}}`, `{"type":"location","body":{"lat":91,"lng":0}}`,
		`{"type":"text","body":{"text":"a"},"Body":{"text":"b"}}`, `{"type":"custom","body":{"a":1,"\u0061":2}}`,
	} {
		f.Add([]byte(s))
	}
	limits := config.Default().Chat
	f.Fuzz(func(t *testing.T, payload []byte) {
		in, err := Decode(payload, limits)
		if err != nil {
			if AsError(err).Code == "" {
				t.Fatalf("uncoded error %v", err)
			}
			return
		}
		trimmed := bytes.TrimLeft(payload, " \t\r\n")
		isJSON := len(trimmed) > 0 && trimmed[0] == '{'
		if isJSON && (CheckRequestJSON(trimmed) != nil || !refStrict(trimmed)) {
			t.Fatalf("accepted a payload that is not strict JSON: %q", payload)
		}
		if in.Kind == KindMsg {
			d := &Draft{From: "alice", To: "bob", CID: in.CID, Type: in.Type, Body: in.Body, ReplyTo: in.ReplyTo, Mentions: in.Mentions, Ext: in.Ext}
			if err := validateMessage(d, limits, false); err != nil {
				if AsError(err).Code == "" {
					t.Fatalf("uncoded error %v", err)
				}
				return
			}
			for what, v := range map[string][]byte{"body": d.Body, "ext": d.Ext} {
				if what == "ext" && v == nil {
					continue
				}
				if CheckJSON(v) != nil || !refStrict(v) {
					t.Fatalf("stored %s is not strict JSON: %q", what, v)
				}
				if c, err := CanonicalJSON(v); err != nil || !bytes.Equal(c, v) {
					t.Fatalf("stored %s %q is not canonical (%q, %v)", what, v, c, err)
				}
				var plain any
				if err := json.Unmarshal(v, &plain); err != nil {
					t.Fatalf("stored %s %q does not decode into float64s: %v", what, v, err)
				}
			}
			if d.Type == "location" {
				var loc struct{ Lat, Lng float64 }
				if err := json.Unmarshal(d.Body, &loc); err != nil || math.Abs(loc.Lat) > 90 || math.Abs(loc.Lng) > 180 {
					t.Fatalf("stored location %s (%v)", d.Body, err)
				}
			}
			if !isJSON && len(payload) > 0 {
				var b struct{ Text string }
				if json.Unmarshal(d.Body, &b) != nil || b.Text != string(payload) || !utf8.ValidString(b.Text) {
					t.Fatalf("text shortcut lost bytes: %q -> %q", payload, d.Body)
				}
			}
		}
	})
}

// FuzzCheckJSON compares the strict check with an independent, recursive
// reference, and checks what it accepts: valid JSON, decoded by
// decodeStrict exactly as encoding/json decodes it, with a canonical form
// that is strict, stable, and readable by a float64 decoder.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `1`, `"s"`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `[{"a":1},{"a":1}]`, `{"a":{"a":1}}`,
		`1e999999`, `-1e309`, `1e-400`, `18446744073709551616`, strings.Repeat("[", 32) + strings.Repeat("]", 32),
		strings.Repeat("[", 33) + strings.Repeat("]", 33), `{} {}`, `{"to":"a","To":"b"}`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckJSON(b)
		reqErr := CheckRequestJSON(b)
		if ref := refStrict(b); ref != (err == nil) {
			t.Fatalf("CheckJSON(%q) = %v, reference says strict=%v", b, err, ref)
		}
		for _, e := range []error{err, reqErr} {
			if e != nil && (AsError(e).Code != CodeInvalid || len(AsError(e).Message) > 512) {
				t.Fatalf("CheckJSON(%q): error %v is not a short invalid", b, e)
			}
		}
		if err != nil {
			if reqErr == nil {
				t.Fatalf("CheckRequestJSON accepted %q that CheckJSON refuses (%v)", b, err)
			}
			if _, cerr := CanonicalJSON(b); cerr == nil {
				t.Fatalf("CanonicalJSON accepted %q that CheckJSON refuses", b)
			}
			return
		}
		got, derr := decodeStrict(b)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if derr != nil || dec.Decode(&want) != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeStrict(%q) = %#v, %v; encoding/json: %#v", b, got, derr, want)
		}
		c, cerr := CanonicalJSON(b)
		if cerr != nil || CheckJSON(c) != nil {
			t.Fatalf("CanonicalJSON(%q) = %q, %v", b, c, cerr)
		}
		if c2, err := CanonicalJSON(c); err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("CanonicalJSON is not stable: %q -> %q -> %q (%v)", b, c, c2, err)
		}
		var plain any
		if err := json.Unmarshal(c, &plain); err != nil {
			t.Fatalf("canonical %q does not decode into float64s: %v", c, err)
		}
	})
}

// refStrict is the reference for the strict rules, written differently
// from the scanner and from refWalkJSON: json.Valid for syntax, then a
// recursive descent.
func refStrict(b []byte) bool {
	if !utf8.Valid(b) || !json.Valid(b) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var value func(depth int) bool
	value = func(depth int) bool {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		switch v := t.(type) {
		case json.Delim:
			if depth+1 > MaxJSONDepth {
				return false
			}
			seen := map[string]bool{}
			for dec.More() {
				if v == '{' {
					k, err := dec.Token()
					if err != nil || seen[k.(string)] {
						return false
					}
					seen[k.(string)] = true
				}
				if !value(depth + 1) {
					return false
				}
			}
			_, err := dec.Token()
			return err == nil
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			return err == nil && !math.IsInf(f, 0)
		}
		return true
	}
	return value(0)
}

// FuzzParseTopic: only exactly im/u/{id} or im/g/{id} with a valid id is
// accepted, and the parts put back together give the topic.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"im/u/bob", "im/g/team", "im/#", "im/u/+", "im/u/", "im/x/a", "im/u/a/b", "$share/x/im/u/a", "im/u/a b", "IM/u/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		tg, ok := ParseTopic(topic)
		if !ok {
			return
		}
		if tg.Topic() != topic || !ValidID(tg.ID) {
			t.Fatalf("accepted %q as %+v", topic, tg)
		}
		if strings.ContainsAny(tg.ID, "+#/") {
			t.Fatalf("wildcard or level in id %q", tg.ID)
		}
	})
}

// FuzzStrictMatchesReference holds the scanner behind CheckJSON,
// CheckRequestJSON and CanonicalJSON to the Decoder.Token walk it replaced
// (refWalkJSON): for every input the same accept or reject, the same
// message, the same decoded value and the same canonical bytes. The one
// difference allowed is the offset of a syntax error inside a string,
// number or literal, where the Decoder counts only the bytes of earlier
// values; there the scanner's offset must be the first byte no JSON
// document can continue with: the reference calls the input up to it no
// syntax error, and up to and including it one.
func FuzzStrictMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `0`, `-0`, `"s"`, `true`, `false`, `null`, ` {"a" : [1, 2.5e3, "x"] } `,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"\u00e9":1,"é":2}`, `{"a":{"b":1},"b":{"a":1,"a":2}}`,
		`{"to":"a","To":"b"}`, `{"ask":1,"aſk":2}`, `{"k":1,"\u212a":2}`, `{"x":{"a":1,"A":2}}`,
		`1e999999`, `-1e309`, `1e308`, `1.7976931348623157e308`, `1.7976931348623159e308`, `0e99999`, `1e-400`,
		`0.0000000000000000000000000000001e340`, `18446744073709551616`, `[1e999`, `[1e999x`,
		`01`, `[01]`, `1.`, `[1.]`, `.5`, `[.5]`, `-`, `[-]`, `-x`, `+1`, `1e`, `1e+`, `1ex`, `1.5.3`,
		strings.Repeat("[", 32) + strings.Repeat("]", 32), strings.Repeat("[", 33) + strings.Repeat("]", 33),
		strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32), strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33),
		"{\"\xff\":1}", "\"\xc3\"", `{} {}`, `{}x`, `1 2`, `"a"b`, `truex`, `[truex]`, `tru`, `trux`, `nul`,
		`"\ud800"`, `{"\ud800":1,"\udbff":2}`, `{"\ud800":1,"\ufffd":2}`, `"\ud83d\ude00"`, `"\ude00\ud83d"`, `"\u12"`, `"\x"`,
		"\"a\x01\"", `{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{1:2}`, `{,}`, `[,]`, `{"a"::1}`, `{"a":}`, `]`, `}`, ``, `  `,
		"\ufeff{}", `{"a":1`, `{"a":1,"a"`, `{"a":1,"a`, `["a\`, `[`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fold := range []bool{false, true} {
			check := CheckJSON
			if fold {
				check = CheckRequestJSON
			}
			err := check(b)
			_, ref := refWalkJSON(b, fold, false)
			sameRefusal(t, b, fold, err, ref)
		}
		got, err := decodeStrict(b)
		want, ref := refWalkJSON(b, false, true)
		sameRefusal(t, b, false, err, ref)
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeStrict(%q) = %#v, reference %#v", b, got, want)
		}
		c, err := CanonicalJSON(b)
		rc, ref := refCanonicalJSON(b)
		sameRefusal(t, b, false, err, ref)
		if !bytes.Equal(c, rc) {
			t.Fatalf("CanonicalJSON(%q) = %q, reference %q", b, c, rc)
		}
	})
}

// sameRefusal fails t unless err (the scanner's) and ref (the reference
// walk's) both accept b or refuse it with the same message, up to the
// offset of a syntax error inside a value (see FuzzStrictMatchesReference).
func sameRefusal(t *testing.T, b []byte, fold bool, err, ref error) {
	t.Helper()
	if (err == nil) != (ref == nil) {
		t.Fatalf("fold=%v %q: scanner %v, reference %v", fold, b, err, ref)
	}
	if err == nil {
		return
	}
	e, r := AsError(err), AsError(ref)
	if e.Code != CodeInvalid || r.Code != CodeInvalid {
		t.Fatalf("fold=%v %q: codes %q and %q", fold, b, e.Code, r.Code)
	}
	if e.Message == r.Message {
		return
	}
	const syntax = "JSON syntax error at byte "
	o, perr := strconv.Atoi(strings.TrimPrefix(e.Message, syntax))
	if !strings.HasPrefix(e.Message, syntax) || !strings.HasPrefix(r.Message, syntax) || perr != nil {
		t.Fatalf("fold=%v %q: scanner %q, reference %q", fold, b, e.Message, r.Message)
	}
	if o < 0 || o >= len(b) {
		t.Fatalf("fold=%v %q: syntax error at byte %d, outside the input", fold, b, o)
	}
	_, size := utf8.DecodeRune(b[o:])
	_, before := refWalkJSON(b[:o], fold, false)
	_, upto := refWalkJSON(b[:o+size], fold, false)
	if before != nil && strings.HasPrefix(before.Error(), "invalid: "+syntax) || upto == nil || !strings.HasPrefix(AsError(upto).Message, syntax) {
		t.Fatalf("fold=%v %q: syntax error at byte %d, but the reference says %v up to it and %v up to and including it", fold, b, o, before, upto)
	}
}
