package hooks

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/mqim/mqim/chat"
)

// FuzzParseRequest: whatever a client publishes on im/rpc, parsing answers
// an id that is JSON (a string, or null) and either a refusal with a code,
// or an HTTP twin whose target is one of the API's paths, with every
// client-given id escaped into a single path segment.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":"r1","method":"conversations","params":{"limit":20,"updated_after":1764140000000}}`,
		`{"id":"r2","method":"messages","params":{"conv":"d:alice:bob","after_seq":0,"limit":200}}`,
		`{"id":"r3","method":"messages","params":{"conv":"../../v1/users/x"}}`,
		`{"id":"r4","method":"read","params":{"conv":"g:team","seq":7}}`,
		`{"id":"r5","method":"conversation.update","params":{"conv":"g:team","pinned":true}}`,
		`{"id":"r6","method":"presence","params":{"user_ids":["a","b"]}}`,
		`{"id":"r7","method":"members","params":{"group":"team","cursor":"x"}}`,
		`{"id":"r8","method":"token"}`, `{"method":"unread"}`, `{"id":5,"method":"unread"}`,
		`{"id":"a","id":"b","method":"unread"}`, `{"id":"r9","method":"user","params":{"user_id":"a/b?c#d"}}`,
		`[]`, `{`, `{"id":"r","method":"group","params":{"group":"%2e%2e"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, c, err := parseRequest(b, 64<<10)
		if !json.Valid(id) {
			t.Fatalf("id %q is not JSON", id)
		}
		if err != nil {
			if e := chat.AsError(err); e.Code != chat.CodeInvalid && e.Code != chat.CodeTooLarge {
				t.Fatalf("refusal code %q: %v", e.Code, err)
			}
			return
		}
		var sid string
		if json.Unmarshal(id, &sid) != nil || sid == "" {
			t.Fatalf("accepted with id %s", id)
		}
		u, perr := url.Parse(c.target)
		if perr != nil || !strings.HasPrefix(c.target, "/v1/") || u.Host != "" || u.Fragment != "" {
			t.Fatalf("target %q: %v", c.target, perr)
		}
		segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
		want := map[string]int{"/v1/conversations": 2, "/v1/unread": 2, "/v1/presence": 2, "/v1/token": 2}
		for _, s := range segs {
			if s == "" || s == "." || s == ".." {
				t.Fatalf("target %q has a segment %q", c.target, s)
			}
		}
		if n, ok := want[u.Path]; ok && len(segs) != n {
			t.Fatalf("target %q: %d segments", c.target, len(segs))
		}
		switch c.method {
		case "GET", "POST", "PATCH":
		default:
			t.Fatalf("method %q", c.method)
		}
	})
}
