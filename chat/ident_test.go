package chat_test

import (
	"strings"
	"testing"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/store"
)

func TestValidID(t *testing.T) {
	for _, ok := range []string{"a", "alice", "A-Z_0.9@x", strings.Repeat("a", 64)} {
		if !chat.ValidID(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 65), "a/b", "a b", "a+b", "a#", "é", "a:b"} {
		if chat.ValidID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConvTarget(t *testing.T) {
	for _, tc := range []struct {
		conv, uid string
		want      chat.Target
		ok        bool
	}{
		{"d:alice:bob", "alice", chat.Target{Kind: store.KindDirect, ID: "bob"}, true},
		{"d:alice:bob", "bob", chat.Target{Kind: store.KindDirect, ID: "alice"}, true},
		{"d:alice:alice", "alice", chat.Target{Kind: store.KindDirect, ID: "alice"}, true},
		{"g:team", "anyone", chat.Target{Kind: store.KindGroup, ID: "team"}, true},
		{"d:alice:bob", "carol", chat.Target{}, false},
		{"d:bob:alice", "alice", chat.Target{}, false}, // not in byte order: no such id
		{"d:alice", "alice", chat.Target{}, false},
		{"g:", "alice", chat.Target{}, false},
		{"x:alice:bob", "alice", chat.Target{}, false},
	} {
		got, err := chat.ConvTarget(tc.conv, tc.uid)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ConvTarget(%q, %q) = %+v, %v", tc.conv, tc.uid, got, err)
		}
		if tc.ok && got.Conv(tc.uid) != tc.conv {
			t.Errorf("%+v.Conv(%q) = %q, want %q", got, tc.uid, got.Conv(tc.uid), tc.conv)
		}
	}
	if id := chat.DeviceID(chat.ClientID("alice", "phone"), "alice"); id != "phone" {
		t.Errorf("DeviceID = %q", id)
	}
	for _, cid := range []string{"alice/", "bob/phone", "alice/a/b", "alicephone"} {
		if id := chat.DeviceID(cid, "alice"); id != "" {
			t.Errorf("DeviceID(%q) = %q, want none", cid, id)
		}
	}
}
