package chat_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
	"github.com/mqim/mqim/store/sqlstore"
)

// counting is the real store, counting the reads the send path's social
// checks make.
type counting struct {
	*sqlstore.Store
	reads atomic.Int64
}

func (c *counting) Blocks(ctx context.Context, uid string) ([]store.Block, error) {
	c.reads.Add(1)
	return c.Store.Blocks(ctx, uid)
}

func (c *counting) Friends(ctx context.Context, uid string) ([]store.Friend, error) {
	c.reads.Add(1)
	return c.Store.Friends(ctx, uid)
}

func (c *counting) UserGroups(ctx context.Context, uid string) ([]string, error) {
	c.reads.Add(1)
	return c.Store.UserGroups(ctx, uid)
}

// Once warm, the block, friend and shared-group checks of a 1:1 send cost
// no database read, and changes made through the service apply to the very
// next send.
func TestSocialChecksCachedAndInvalidated(t *testing.T) {
	st := &counting{Store: testutil.OpenStore(t, "sqlite")}
	addUsers(t, st, "alice", "bob", "carol")
	cfg := config.Default().Chat
	cfg.DirectPolicy = config.DirectFriendsOrSharedGroup
	svc := chat.New(chat.Options{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: cfg})
	svc.Start()
	t.Cleanup(svc.Close)
	ctx := context.Background()
	alice := chat.Actor{UserID: "alice"}
	send := func(from, to string, i int) error {
		_, err := svc.Send(ctx, &chat.Draft{From: from, To: to, Type: "text", Body: []byte(`{"text":"x"}`), CID: fmt.Sprintf("%s-%s-%d", from, to, i)})
		return err
	}
	wantCode := func(what string, err error, code string) {
		t.Helper()
		if code == "" && err != nil || code != "" && chat.AsError(err).Code != code {
			t.Fatalf("%s: %v, want code %q", what, err, code)
		}
	}
	wantCode("strangers", send("alice", "bob", 0), chat.CodeForbidden)
	if _, _, err := svc.CreateGroup(ctx, alice, chat.NewGroup{ID: "g", Name: "G", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	wantCode("shared group", send("alice", "bob", 1), "")
	warm := st.reads.Load()
	for i := 2; i < 200; i++ {
		wantCode("warm", send("alice", "bob", i), "")
		wantCode("warm, back", send("bob", "alice", i), "")
	}
	if n := st.reads.Load() - warm; n > 4 { // bob→alice warms its own keys once
		t.Fatalf("%d social reads for 396 warm sends, want at most 4", n)
	}
	// A block applies at once, and so does its lifting.
	if err := svc.Block(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	wantCode("blocked", send("bob", "alice", 1000), chat.CodeBlocked)
	wantCode("the blocker", send("alice", "bob", 1000), "")
	if err := svc.Unblock(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	wantCode("unblocked", send("bob", "alice", 1001), "")
	// Leaving the group closes the door at once; friendship opens it.
	if err := svc.RemoveMember(ctx, chat.Actor{UserID: "bob"}, "g", "bob"); err != nil {
		t.Fatal(err)
	}
	wantCode("left the group", send("bob", "alice", 1002), chat.CodeForbidden)
	if _, err := svc.RequestFriend(ctx, chat.Actor{UserID: "bob"}, "bob", "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AnswerFriendRequest(ctx, "alice", "bob", true); err != nil {
		t.Fatal(err)
	}
	wantCode("friends", send("bob", "alice", 1003), "")
	if err := svc.Unfriend(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	wantCode("unfriended", send("bob", "alice", 1004), chat.CodeForbidden)
	// A group joined later opens it again.
	if _, err := svc.AddMembers(ctx, alice, "g", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	wantCode("rejoined", send("bob", "alice", 1005), "")
	wantCode("notes to self", send("carol", "carol", 0), "")
}
