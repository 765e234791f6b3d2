package hooks_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/mqim/mqim/broker"
	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
)

// slowLister reads a user's groups from the real store, then holds the
// answer until released: the window in which a session is being set up.
type slowLister struct {
	st      store.Store
	read    chan struct{}
	release chan struct{}
}

func (s *slowLister) UserGroups(ctx context.Context, uid string) ([]string, error) {
	gids, err := s.st.UserGroups(ctx, uid)
	s.read <- struct{}{}
	<-s.release
	return gids, err
}

// A join committed while a device's session is being set up reaches that
// session: the stale group list read before the join does not undo it.
func TestJoinDuringSessionSetup(t *testing.T) {
	st := testutil.OpenStore(t, "sqlite")
	ctx := context.Background()
	for _, u := range []string{"owner", "bob"} {
		if _, err := st.UpsertUser(ctx, &store.User{ID: u}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default().MQTT
	cfg.Addr, cfg.WSAddr = "127.0.0.1:0", ""
	log := slog.New(slog.DiscardHandler)
	b, err := broker.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	svc := chat.New(chat.Options{Store: st, Log: log, Config: config.Default().Chat, Deliverer: b, Subscriber: b, Disconnector: b})
	svc.Start()
	defer svc.Close()
	if _, _, err := svc.CreateGroup(ctx, chat.Actor{UserID: "owner"}, chat.NewGroup{ID: "G", Name: "g", Owner: "owner"}); err != nil {
		t.Fatal(err)
	}
	lister := &slowLister{st: st, read: make(chan struct{}), release: make(chan struct{})}
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.AddHook(new(hooks.Sessions), &hooks.SessionOptions{Broker: b, Groups: lister, Members: svc}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	bob, err := (&testutil.Server{MQTTAddr: b.Addr("tcp")}).Dial("bob", "d1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Disconnect(50)
	<-lister.read // the session has read bob's groups: none
	// bob joins G: committed, then the delivery goroutine subscribes bob's
	// sessions, and bob/d1 gets the joined event on the group topic.
	if _, err := svc.AddMembers(ctx, chat.Actor{UserID: "owner"}, "G", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	bob.Await(t, wait, map[string]any{"kind": "group", "event": "joined", "user": "bob"})
	close(lister.release)
	testutil.Eventually(t, wait, func() error {
		if !b.Settled("bob/d1") {
			return context.DeadlineExceeded
		}
		return nil
	})
	// The set-up kept the group: a message to G reaches bob/d1.
	if _, err := svc.Send(ctx, &chat.Draft{From: "owner", Group: "G", Type: "text", Body: []byte(`{"text":"after set-up"}`)}); err != nil {
		t.Fatal(err)
	}
	bob.Await(t, wait, map[string]any{"kind": "msg", "to": "G", "from": "owner"})
}
