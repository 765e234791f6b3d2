package chat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
)

// mqttLog records, in order, what the service asks of the MQTT side, and
// whether bob was a reader of the group (the ACL's question) at each
// delivery.
type mqttLog struct {
	mu  sync.Mutex
	svc *chat.Service
	log []string
	end chan struct{}
}

func (l *mqttLog) add(s string) {
	l.mu.Lock()
	l.log = append(l.log, s)
	l.mu.Unlock()
}

func (l *mqttLog) Deliver(topic string, payload []byte, _ byte) error {
	var ev struct {
		Kind, Type, Event string
	}
	_ = json.Unmarshal(payload, &ev)
	ok, _ := l.svc.IsMember(context.Background(), "g", "bob")
	l.add(fmt.Sprintf("deliver %s %s%s%s member=%v", topic, ev.Kind, ev.Type, ev.Event, ok))
	return nil
}

func (l *mqttLog) SubscribeUsers(topic string, uids []string) {
	l.add("subscribe " + topic + " " + strings.Join(uids, ","))
}

func (l *mqttLog) UnsubscribeUsers(topic string, uids []string) {
	l.add("unsubscribe " + topic + " " + strings.Join(uids, ","))
	close(l.end)
}

// A dissolve delivers its message and events while the members are still
// the group's readers, to the group topic and each member's inbox, and only
// then ends their subscriptions and membership.
func TestDissolveDeliversBeforeUnsubscribing(t *testing.T) {
	st := testutil.OpenStore(t, "sqlite")
	addUsers(t, st, "alice", "bob")
	l := &mqttLog{end: make(chan struct{})}
	svc := chat.New(chat.Options{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: config.Default().Chat,
		Deliverer: l, Subscriber: l})
	l.svc = svc
	svc.Start()
	t.Cleanup(svc.Close)
	ctx := context.Background()
	svc1 := chat.Actor{UserID: "alice"}
	if _, _, err := svc.CreateGroup(ctx, svc1, chat.NewGroup{ID: "g", Name: "G", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Dissolve(ctx, chat.Actor{UserID: "bob"}, "g"); chat.AsError(err).Code != chat.CodeForbidden {
		t.Fatalf("a member dissolving: %v, want forbidden", err)
	}
	if err := svc.Dissolve(ctx, svc1, "g"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.end:
	case <-time.After(10 * time.Second):
		t.Fatal("the members were never unsubscribed")
	}
	want := []string{
		"deliver im/g/g msgsystem member=true",
		"deliver im/g/g groupdissolved member=true",
		"deliver im/u/alice groupdissolved member=true",
		"deliver im/u/bob groupdissolved member=true",
		"unsubscribe im/g/g alice,bob",
	}
	l.mu.Lock()
	got := slices.Clone(l.log)
	l.mu.Unlock()
	// (The creation's calls come first.)
	if len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) {
		t.Fatalf("MQTT calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ok, _ := svc.IsMember(ctx, "g", "bob"); ok {
		t.Error("bob is still a reader of the dissolved group")
	}
	if err := svc.Typing(ctx, "bob", chat.Target{Kind: store.KindGroup, ID: "g"}); chat.AsError(err).Code != chat.CodeNotFound {
		t.Errorf("typing into a dissolved group: %v, want not_found", err)
	}
	if _, err := svc.Send(ctx, &chat.Draft{From: "alice", Group: "g", Type: "text", Body: json.RawMessage(`{"text":"x"}`)}); chat.AsError(err).Code != chat.CodeNotFound {
		t.Errorf("send to a dissolved group: %v, want not_found", err)
	}
}
