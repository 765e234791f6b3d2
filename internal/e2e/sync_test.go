package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

type convRow struct {
	ID        string `json:"id"`
	Unread    int64  `json:"unread"`
	Pinned    bool   `json:"pinned"`
	UpdatedAt int64  `json:"updated_at"` // Unix ms
}

// A second device that syncs with updated_after sees the first device's
// reads and pin/mute/hide changes; every device gets the conv event of a
// change, and a read or a PATCH that changes nothing emits nothing.
func TestSecondDeviceSync(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		phone := srv.Connect(t, "bob", "phone", tb)
		tablet := srv.Connect(t, "bob", "tablet", tb)
		a := srv.Connect(t, "alice", "a", ta)
		a.MustPublish(t, "im/u/bob", 1, "one")
		a.MustPublish(t, "im/u/bob", 1, "two")
		tablet.Await(t, wait, map[string]any{"kind": "msg", "seq": 2})
		var before []convRow
		srv.MustAPI(t, 200, "GET", "/v1/conversations", tb, nil, &before)
		if len(before) != 1 || before[0].Unread != 2 {
			t.Fatalf("before: %+v", before)
		}
		mark := before[0].UpdatedAt
		// The phone reads: the tablet's sync shows it, and the read event
		// reaches both devices (and alice: the receipt).
		phone.MustPublish(t, "im/u/alice", 1, `{"kind":"read","seq":2}`)
		tablet.Await(t, wait, map[string]any{"kind": "read", "user": "bob", "seq": 2})
		a.Await(t, wait, map[string]any{"kind": "read", "user": "bob", "seq": 2})
		var after []convRow
		srv.MustAPI(t, 200, "GET", "/v1/conversations?updated_after="+strconv.FormatInt(mark, 10), tb, nil, &after)
		if len(after) != 1 || after[0].Unread != 0 {
			t.Fatalf("updated_after sync after a read on another device: %+v", after)
		}
		// The same read again changes nothing and emits nothing: the next
		// event the tablet sees is the pin's conv event.
		phone.MustPublish(t, "im/u/alice", 1, `{"kind":"read","seq":2}`)
		srv.MustAPI(t, 200, "POST", "/v1/conversations/d:alice:bob/read", tb, map[string]int{"seq": 1}, nil)
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/d:alice:bob", tb, map[string]bool{"pinned": true}, nil)
		ev := tablet.Await(t, wait, map[string]any{"kind": "conv"})
		if ev["conv"] != "d:alice:bob" || ev["pinned"] != true || ev["read_seq"] != float64(2) {
			t.Fatalf("conv event %v", ev)
		}
		phone.Await(t, wait, map[string]any{"kind": "conv", "pinned": true})
		mark = after[0].UpdatedAt
		srv.MustAPI(t, 200, "GET", "/v1/conversations?updated_after="+strconv.FormatInt(mark, 10), tb, nil, &after)
		if len(after) != 1 || !after[0].Pinned {
			t.Fatalf("updated_after sync after a pin: %+v", after)
		}
		// A PATCH that changes nothing sends nothing: a real change after it
		// is the next conv event the phone sees.
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/d:alice:bob", tb, map[string]bool{"pinned": true}, nil)
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/d:alice:bob", tb, map[string]bool{"muted": true}, nil)
		if ev := phone.Await(t, wait, map[string]any{"kind": "conv"}); ev["muted"] != true {
			t.Fatalf("a no-op PATCH sent a conv event: %v", ev)
		}
		// And no read event came for the no-op reads: alice's next event is a
		// message.
		srv.MustAPI(t, 201, "POST", "/v1/messages", tb, map[string]any{"to": "alice", "type": "text", "body": map[string]string{"text": "marker"}}, nil)
		if ev := a.Await(t, wait, map[string]any{}); ev["kind"] != "msg" {
			t.Fatalf("alice's next event after no-op reads: %v", ev)
		}
	})
}

// History without after_seq or before_seq is the newest page, newest first.
func TestHistoryNewestPage(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		srv.User(t, "bob")
		for i := 1; i <= 5; i++ {
			srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": "m"}}, nil)
		}
		var page []msg
		srv.MustAPI(t, 200, "GET", "/v1/conversations/d:alice:bob/messages?limit=2", ta, nil, &page)
		if len(page) != 2 || page[0].Seq != 5 || page[1].Seq != 4 {
			t.Fatalf("newest page: %+v", page)
		}
		srv.MustAPI(t, 200, "GET", "/v1/conversations/d:alice:bob/messages?after_seq=0&limit=2", ta, nil, &page)
		if len(page) != 2 || page[0].Seq != 1 {
			t.Fatalf("after_seq=0: %+v", page)
		}
	})
}

// Presence is for contacts, a profile's ext and disabled for its owner and
// the backend, /metrics for the service key or the metrics token.
func TestPrivacy(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.HTTP.MetricsToken = "scraper-token-0123456789" })
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.User(t, "carol")
		srv.MustAPI(t, 200, "PUT", "/v1/users/carol", testutil.ServiceKey, map[string]any{"ext": map[string]string{"plan": "gold"}}, nil)
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": "hi"}}, nil)
		var pres map[string]json.RawMessage
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=alice,bob,carol", ta, nil, &pres)
		if _, ok := pres["carol"]; ok || pres["bob"] == nil || pres["alice"] == nil {
			t.Fatalf("alice's presence view: %v (carol shares nothing with alice)", pres)
		}
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=alice,bob,carol", testutil.ServiceKey, nil, &pres)
		if len(pres) != 3 {
			t.Fatalf("service key presence: %v", pres)
		}
		_, body := srv.API(t, "GET", "/v1/users/carol", tb, nil)
		if strings.Contains(string(body), "gold") || strings.Contains(string(body), "disabled") {
			t.Fatalf("bob sees carol's private fields: %s", body)
		}
		for _, who := range []string{testutil.ServiceKey} {
			if _, body := srv.API(t, "GET", "/v1/users/carol", who, nil); !strings.Contains(string(body), "gold") || !strings.Contains(string(body), `"disabled":false`) {
				t.Fatalf("the full view lacks private fields: %s", body)
			}
		}
		for _, tc := range []struct {
			bearer string
			want   int
		}{{"", 401}, {ta, 401}, {"wrong", 401}, {testutil.ServiceKey, 200}, {"scraper-token-0123456789", 200}} {
			if st, _ := srv.API(t, "GET", "/metrics", tc.bearer, nil); st != tc.want {
				t.Errorf("/metrics with %q: %d, want %d", tc.bearer, st, tc.want)
			}
		}
	})
}
