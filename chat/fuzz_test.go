package chat

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mqim/mqim/internal/config"
)

// FuzzDecode feeds arbitrary client payloads through the decoder and the
// message validation: nothing may panic, every refusal is a coded *Error,
// and an accepted text message carries exactly the bytes that were sent.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"hi", "", "{", "{}", `{"kind":"msg","cid":"c1","type":"text","body":{"text":"hi"}}`,
		`{"kind":"read","seq":3}`, `{"kind":"typing"}`, `{"kind":"recall","id":"01ABC"}`,
		`{"type":"image","body":{"url":"https://x/y.png","width":10,"height":20}}`,
		`{"type":"location","body":{"lat":1.5,"lng":-3}}`, `{"type":"custom","body":[1,2,3]}`,
		`{"cid":"x","type":"text","body":`, "\xff\xfe", `{"type":"card","body":{"user_id":"bob"}}`,
		`{"mentions":["all","bob"],"type":"text","body":{"text":"@all"},"ext":{"a":1}}`,
		`  {"kind":"msg"} trailing`, `{"cid":` + strings.Repeat("[", 100),
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
		if in.Kind == KindMsg {
			d := &Draft{From: "alice", To: "bob", CID: in.CID, Type: in.Type, Body: in.Body, ReplyTo: in.ReplyTo, Mentions: in.Mentions, Ext: in.Ext}
			if err := validateMessage(d, limits, false); err != nil {
				if AsError(err).Code == "" {
					t.Fatalf("uncoded error %v", err)
				}
				return
			}
			if !json.Valid(d.Body) {
				t.Fatalf("accepted body is not JSON: %q", d.Body)
			}
			if len(payload) > 0 && payload[0] != '{' && payload[0] != ' ' && payload[0] != '\t' && payload[0] != '\r' && payload[0] != '\n' {
				var b struct{ Text string }
				if json.Unmarshal(d.Body, &b) != nil || b.Text != string(payload) || !utf8.ValidString(b.Text) {
					t.Fatalf("text shortcut lost bytes: %q -> %q", payload, d.Body)
				}
			}
		}
	})
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
