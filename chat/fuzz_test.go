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
// from walkJSON: json.Valid for syntax, then a recursive descent.
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
