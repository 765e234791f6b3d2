package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
)

// strictCases are payloads that one JSON parser may read differently from
// another, or that no strict decoder reads: all invalid, on every door.
// body is the message part (kind, cid, type, body, ext, ...) without the
// destination; want is part of the error message.
var strictCases = []struct{ name, cid, body, want string }{
	{"duplicate text key", "dup1", `"type":"text","body":{"text":"` + strings.Repeat("x", 6000) + `","text":"ok"}`, `key "text" twice`},
	{"infinite number", "inf1", `"type":"location","body":{"lat":1e999999,"lng":2}`, "out of range"},
	{"infinite number in ext", "inf2", `"type":"text","body":{"text":"a"},"ext":{"n":[-1e309]}`, "out of range"},
	{"duplicate top-level kind", "top1", `"kind":"msg","kind":"read","seq":1,"type":"text","body":{"text":"a"}`, `key "kind" twice`},
	{"duplicate top-level body", "top2", `"type":"text","body":{"text":"a"},"body":{"text":"b"}`, `key "body" twice`},
	{"duplicate top-level type", "top3", `"type":"text","type":"custom","body":{"text":"a"}`, `key "type" twice`},
	{"top-level keys differing in case", "case1", `"type":"text","body":{"text":"a"},"Body":{"text":"b"}`, "twice"},
	{"escaped duplicate in ext", "ext1", `"type":"text","body":{"text":"a"},"ext":{"k":1,"\u006b":2}`, `key "k" twice`},
	{"deep ext", "deep1", `"type":"text","body":{"text":"a"},"ext":` + strings.Repeat("[", 33) + strings.Repeat("]", 33), "deeper than 32"},
	{"lat out of range", "lat1", `"type":"location","body":{"lat":90.5,"lng":2}`, "body.lat must be from -90 to 90"},
	{"lng out of range", "lng1", `"type":"location","body":{"lat":0,"lng":-180.5}`, "body.lng must be from -180 to 180"},
	{"negative size", "size1", `"type":"file","body":{"url":"https://x/f","name":"f","size":-1}`, "body.size"},
	{"mentions of the wrong type", "typ1", `"type":"text","body":{"text":"a"},"mentions":"bob"`, `"mentions" must be`},
	{"type of the wrong type", "typ2", `"type":7,"body":{"text":"a"}`, `"type" must be`},
}

// A valid message written oddly (spaces, key order, escapes) is stored as
// the validated value re-encoded: what history returns is the canonical
// form, whichever door it came through.
const (
	oddMQTT  = " {\n \"body\" : { \"z\" : [ 1 , 2.50 ], \"text\" : \"hi \\u00e9\" } ,\t\"type\":\"text\" , \"cid\" : \"odd-mqtt\", \"ext\" : { \"b\" : 1 , \"a\" : [ ] } } "
	oddHTTP  = `{ "ext" : { "b" : 1 , "a" : [ ] } , "body" : { "z" : [ 1 , 2.50 ] , "text" : "hi \u00e9" } , "to" : "bob" , "type" : "text" , "cid" : "odd-http" }`
	oddBody  = `{"text":"hi é","z":[1,2.50]}`
	oddExt   = `{"a":[],"b":1}`
	oddV5    = `{"type":"location","cid":"odd-v5","body":{"name":"Eiffel","lng":2.29450,"lat":48.8584}}`
	oddV5Out = `{"lat":48.8584,"lng":2.2945,"name":"Eiffel"}`
)

func TestStrictPayloads(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		a := srv.Connect(t, "alice", "a", ta)
		b := srv.Connect(t, "bob", "b", tb)
		v5, err := srv.DialV5(t, "alice", "v5", ta)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range strictCases {
			payload := `{"cid":"` + tc.cid + `",` + tc.body + `}`
			// MQTT 3.1.1: acknowledged, refused with the error event.
			if err := a.Publish("im/u/bob", 1, payload); err != nil {
				t.Fatalf("%s: v3 publish: %v", tc.name, err)
			}
			ev := a.Await(t, wait, map[string]any{"kind": "error", "cid": tc.cid})
			msg, _ := ev["message"].(string)
			if ev["code"] != "invalid" || !strings.Contains(msg, tc.want) || len(msg) > 300 {
				t.Errorf("%s: MQTT 3.1.1 error %v, want invalid with %q", tc.name, ev, tc.want)
			}
			// MQTT 5: PUBACK 0x99 payload format invalid.
			if rc, _ := v5.Publish("im/u/bob", 1, []byte(payload)); rc != 0x99 {
				t.Errorf("%s: MQTT 5 PUBACK 0x%x, want 0x99", tc.name, rc)
			}
			// HTTP: 400 invalid, the same rule.
			st, out := srv.API(t, "POST", "/v1/messages", ta, `{"to":"bob",`+payload[1:])
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || st != 400 || e.Error.Code != "invalid" || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("%s: HTTP %d %.300s, want 400 invalid with %q", tc.name, st, out, tc.want)
			}
		}
		// A QoS 0 publish with a duplicate key is dropped, answered with the event.
		if err := a.Publish("im/u/bob", 0, `{"cid":"q0","type":"text","body":{"text":"a","text":"b"}}`); err != nil {
			t.Fatal(err)
		}
		a.Await(t, wait, map[string]any{"kind": "error", "cid": "q0", "code": "invalid"})
		// HTTP only: the destination twice, on every endpoint with a body.
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/v1/messages", `{"to":"bob","to":"carol","type":"text","body":{"text":"a"}}`},
			{"POST", "/v1/messages", `{"to":"bob","group":"g","GROUP":"h","type":"text","body":{"text":"a"}}`},
			{"PATCH", "/v1/conversations/d:alice:bob", `{"muted":true,"muted":false}`},
			{"POST", "/v1/conversations/d:alice:bob/read", `{"seq":1e999999}`},
			{"PUT", "/v1/devices/phone", `{"platform":"ios","platform":"android","token":"abc"}`},
			{"POST", "/v1/groups", `{"name":"G","members":["bob"],"members":["carol"]}`},
		} {
			if st, out := srv.API(t, c.method, c.path, ta, c.body); st != 400 || !strings.Contains(string(out), `"code":"invalid"`) {
				t.Errorf("%s %s %s: %d %s, want 400 invalid", c.method, c.path, c.body, st, out)
			}
		}
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/v1/users/alice", `{"name":"A","name":"B"}`},
			{"PUT", "/v1/users/alice", `{"ext":{"a":{"b":1,"b":2}}}`},
		} {
			if st, out := srv.API(t, c.method, c.path, testutil.ServiceKey, c.body); st != 400 || !strings.Contains(string(out), `"code":"invalid"`) {
				t.Errorf("%s %s %s: %d %s, want 400 invalid", c.method, c.path, c.body, st, out)
			}
		}

		// Nothing of the above was stored: the conversation does not exist yet.
		if st, out := srv.API(t, "GET", "/v1/conversations/d:alice:bob/messages", tb, nil); st != 404 {
			t.Fatalf("history after refusals: %d %s, want 404 (nothing stored)", st, out)
		}

		// Valid payloads written oddly are stored re-encoded.
		if err := a.Publish("im/u/bob", 1, oddMQTT); err != nil {
			t.Fatal(err)
		}
		live := b.Await(t, wait, map[string]any{"kind": "msg", "cid": "odd-mqtt"})
		if rc, err := v5.Publish("im/u/bob", 1, []byte(oddV5)); rc != 0 || err != nil {
			t.Fatalf("v5 odd payload: 0x%x %v", rc, err)
		}
		var sent struct {
			Body json.RawMessage `json:"body"`
			Ext  json.RawMessage `json:"ext"`
		}
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, oddHTTP, &sent)
		if string(sent.Body) != oddBody || string(sent.Ext) != oddExt {
			t.Errorf("HTTP answer body %s ext %s, want %s %s", sent.Body, sent.Ext, oddBody, oddExt)
		}
		h := history(t, srv, tb, "d:alice:bob", 0)
		if len(h) != 3 {
			t.Fatalf("history has %d messages, want 3: %+v", len(h), h)
		}
		for _, m := range h {
			want := oddBody
			if m.CID == "odd-v5" {
				want = oddV5Out
			}
			if string(m.Body) != want || strings.Count(string(m.Body), `"text"`) > 1 {
				t.Errorf("history %s: body %s, want %s", m.CID, m.Body, want)
			}
		}
		var raw []struct {
			CID string          `json:"cid"`
			Ext json.RawMessage `json:"ext"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/conversations/d:alice:bob/messages?after_seq=0", tb, nil, &raw)
		for _, m := range raw {
			if m.CID != "odd-v5" && string(m.Ext) != oddExt {
				t.Errorf("history %s: ext %s, want %s", m.CID, m.Ext, oddExt)
			}
		}
		// The live event carries the stored form too.
		if body, _ := json.Marshal(live["body"]); string(body) != `{"text":"hi é","z":[1,2.5]}` {
			t.Errorf("live body %s", body)
		}
	})
}

// apnsToken is a well-formed APNs device token (64 hex digits) named by s.
func apnsToken(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Push tokens are checked against their platform's format before the store
// sees them: a token the column cannot hold (non-ASCII on MySQL) is 400
// invalid on both stores, never a 503, and nothing is registered.
func TestPushTokenFormats(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		fcm := "dXJlbC1hYmM6QVBBOTFiSG" + strings.Repeat("x", 100) + ":APA91b_-.Z9"
		refused := []struct{ name, platform, token, topic string }{
			{"non-ASCII android", "android", "tök-" + strings.Repeat("a", 20), ""},
			{"non-ASCII huawei", "huawei", "令牌" + strings.Repeat("1", 30), ""},
			{"non-hex ios", "ios", strings.Repeat("é", 32), ""},
			{"ios with letters beyond f", "ios", strings.Repeat("g", 64), ""},
			{"ios too short", "ios", strings.Repeat("a", 63), ""},
			{"ios too long", "ios", strings.Repeat("a", 201), ""},
			{"ios with colon", "ios", strings.Repeat("a", 62) + ":a", ""},
			{"android with space", "android", "abc def", ""},
			{"android with tab", "android", "abc\tdef", ""},
			{"android with NUL", "android", "abc\x00def", ""},
			{"android with slash", "android", "abc/def", ""},
			{"android with plus", "android", "abc+def=", ""},
			{"android too long", "android", strings.Repeat("a", 256), ""},
			{"huawei empty", "huawei", "", ""},
			{"non-ASCII topic", "ios", apnsToken("topic1"), "com.exämple.chat"},
			{"topic with space", "ios", apnsToken("topic2"), "com.example chat"},
			{"topic with newline", "ios", apnsToken("topic3"), "com.example\nchat"},
			{"topic too long", "ios", apnsToken("topic4"), strings.Repeat("c", 256)},
		}
		for _, tc := range refused {
			st, body := srv.API(t, "PUT", "/v1/devices/phone", ta, map[string]string{"platform": tc.platform, "token": tc.token, "topic": tc.topic})
			if st != 400 || !strings.Contains(string(body), `"code":"invalid"`) {
				t.Errorf("%s: %d %s, want 400 invalid", tc.name, st, body)
			}
		}
		var devs []struct {
			DeviceID string `json:"device_id"`
			Token    string `json:"token"`
			Topic    string `json:"topic"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &devs)
		if len(devs) != 0 {
			t.Fatalf("refused registrations were stored: %+v", devs)
		}

		upper := strings.ToUpper(apnsToken("upper"))
		accepted := []struct{ dev, platform, token, topic, stored string }{
			{"ios64", "ios", upper, "com.example.chat", apnsToken("upper")}, // hex in any case, stored in lower case
			{"ios200", "ios", strings.Repeat("0123456789", 20), "", strings.Repeat("0123456789", 20)},
			{"fcm", "android", fcm, "", fcm},
			{"fcm255", "android", strings.Repeat("A", 255), "", strings.Repeat("A", 255)},
			{"hms", "huawei", "0861234567890123450000012345CN01", "", "0861234567890123450000012345CN01"},
			{"topic255", "ios", apnsToken("t255"), strings.Repeat("c", 255), apnsToken("t255")},
		}
		for _, tc := range accepted {
			srv.MustAPI(t, 200, "PUT", "/v1/devices/"+tc.dev, ta, map[string]string{"platform": tc.platform, "token": tc.token, "topic": tc.topic}, nil)
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &devs)
		got := map[string]string{}
		for _, d := range devs {
			got[d.DeviceID] = d.Token
		}
		for _, tc := range accepted {
			if got[tc.dev] != tc.stored {
				t.Errorf("%s: stored token %q, want %q", tc.dev, got[tc.dev], tc.stored)
			}
		}
		if len(devs) != len(accepted) {
			t.Errorf("%d devices registered, want %d: %+v", len(devs), len(accepted), devs)
		}
		// The same APNs token in another case is the same token: it moves
		// to the device that registers it last, it is not registered twice.
		srv.MustAPI(t, 200, "PUT", "/v1/devices/again", ta, map[string]string{"platform": "ios", "token": apnsToken("upper")}, nil)
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &devs)
		for _, d := range devs {
			if d.DeviceID == "ios64" {
				t.Errorf("the lower-case token did not replace its upper-case registration: %+v", devs)
			}
		}
	})
}
