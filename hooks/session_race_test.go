package hooks_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/configs"
	"github.com/mqim/mqim/hooks"
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
	svc := chat.New(chat.Options{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: configs.Default().Chat})
	svc.Start()
	defer svc.Close()
	if _, _, err := svc.CreateGroup(ctx, chat.Actor{UserID: "owner"}, chat.NewGroup{ID: "G", Name: "g", Owner: "owner"}); err != nil {
		t.Fatal(err)
	}

	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lister := &slowLister{st: st, read: make(chan struct{}), release: make(chan struct{})}
	h := new(hooks.Sessions)
	if err := srv.AddHook(h, &hooks.SessionOptions{Server: srv, Groups: lister, Members: svc}); err != nil {
		t.Fatal(err)
	}
	cl := srv.NewClient(nil, "tcp", "bob/d1", false)
	cl.Properties.Username = []byte("bob")
	srv.Clients.Add(cl)
	done := make(chan struct{})
	go func() { defer close(done); h.OnSessionEstablished(cl, packets.Packet{}) }()
	<-lister.read // the session has read bob's groups: none
	// bob joins G: committed, then the delivery goroutine updates sessions.
	if _, err := svc.AddMembers(ctx, chat.Actor{UserID: "owner"}, "G", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	h.Joined("G", []string{"bob"})
	close(lister.release)
	<-done
	if _, ok := srv.Topics.Subscribers("im/g/G").Subscriptions["bob/d1"]; !ok {
		t.Error("bob/d1 is not subscribed to im/g/G after joining during its session set-up")
	}
	if _, ok := srv.Topics.Subscribers("im/u/bob").Subscriptions["bob/d1"]; !ok {
		t.Error("bob/d1 is not subscribed to its inbox")
	}
	if !h.Settled("bob/d1") {
		t.Error("session not reported settled")
	}
}
