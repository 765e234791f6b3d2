package chat_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
	"github.com/mqim/mqim/store/sqlstore"
)

// faulty is the real store with two fault injections the committer must
// survive: a commit held open (so that what is submitted meanwhile lands in
// one batch) and commits failing for chosen writes (a deadlock, a dropped
// connection); and a membership read held between reading and returning.
type faulty struct {
	*sqlstore.Store
	mu        sync.Mutex
	hold      chan struct{} // the next Commit waits for it to close
	held      chan struct{} // signalled when a Commit is held
	failCID   string        // batches holding this cid fail
	holdRead  chan struct{} // the next Members returns only when it closes
	readTaken chan struct{} // signalled once that Members has read
}

func (f *faulty) Commit(ctx context.Context, batch []store.Write) error {
	f.mu.Lock()
	hold, failCID := f.hold, f.failCID
	f.hold = nil
	f.mu.Unlock()
	if hold != nil {
		f.held <- struct{}{}
		<-hold
	}
	for _, w := range batch {
		if failCID != "" && w.Msg.CID == failCID {
			return errors.New("injected: driver: bad connection")
		}
	}
	return f.Store.Commit(ctx, batch)
}

func (f *faulty) Members(ctx context.Context, gid string) ([]store.Member, error) {
	f.mu.Lock()
	hold := f.holdRead
	f.holdRead = nil
	f.mu.Unlock()
	ms, err := f.Store.Members(ctx, gid)
	if hold != nil {
		f.readTaken <- struct{}{}
		<-hold
	}
	return ms, err
}

func newFaulty(t *testing.T, backend string, ttl time.Duration, users ...string) (*faulty, *chat.Service) {
	t.Helper()
	st := testutil.OpenStore(t, backend)
	addUsers(t, st, users...)
	f := &faulty{Store: st, held: make(chan struct{}, 1), readTaken: make(chan struct{}, 1)}
	return f, startService(t, f, ttl)
}

// holdCommit blocks the committer on a plug message, runs submit (which
// must queue n writes), and releases the commit once they are all queued,
// so they are written as one batch.
func holdCommit(t *testing.T, f *faulty, svc *chat.Service, n int, submit func(wg *sync.WaitGroup)) {
	t.Helper()
	f.mu.Lock()
	hold := make(chan struct{})
	f.hold = hold
	f.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = svc.Send(context.Background(), &chat.Draft{From: "plug", To: "sink", Type: "text", Body: text("plug")})
	}()
	<-f.held
	submit(&wg)
	testutil.Eventually(t, 10*time.Second, func() error {
		if q := svc.QueueLen(); q < n {
			return fmt.Errorf("%d of %d queued", q, n)
		}
		return nil
	})
	close(hold)
	wg.Wait()
}

func text(s string) []byte { return []byte(`{"text":"` + s + `"}`) }

// A write the database refuses for good (here: the same user invited twice
// at once) fails alone; the unrelated messages of its batch are stored.
func TestConflictDoesNotFailBatchMates(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		users := []string{"owner", "adm", "bob", "plug", "sink"}
		for i := 0; i < 10; i++ {
			users = append(users, fmt.Sprintf("s%d", i))
		}
		f, svc := newFaulty(t, backend, time.Minute, users...)
		ctx := context.Background()
		if _, _, err := svc.CreateGroup(ctx, chat.Actor{UserID: "owner"}, chat.NewGroup{ID: "G", Name: "g", Owner: "owner", Members: []string{"adm"}}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var sendErrs []error
		added := 0
		holdCommit(t, f, svc, 12, func(wg *sync.WaitGroup) {
			for _, a := range []string{"owner", "adm"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if got, err := svc.AddMembers(ctx, chat.Actor{UserID: a}, "G", []string{"bob"}); err == nil && len(got) == 1 {
						mu.Lock()
						added++
						mu.Unlock()
					}
				}()
			}
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := svc.Send(ctx, &chat.Draft{From: fmt.Sprintf("s%d", i), To: "sink", Type: "text", Body: text("hi"), CID: fmt.Sprintf("c%d", i)})
					mu.Lock()
					sendErrs = append(sendErrs, err)
					mu.Unlock()
				}()
			}
		})
		for _, err := range sendErrs {
			if err != nil {
				t.Errorf("an unrelated send failed with its batch: %v", err)
			}
		}
		if added != 1 {
			t.Errorf("bob added %d times, want exactly once", added)
		}
		if ok, _ := svc.IsMember(ctx, "G", "bob"); !ok {
			t.Error("bob is not a member after the invitations")
		}
	})
}

// When a batch fails and its writes are retried alone, the message that
// does get stored first in a new 1:1 conversation still brings both users
// in, even though it was not the first of the batch.
func TestSplitBatchKeepsParticipants(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		f, svc := newFaulty(t, backend, time.Minute, "alice", "bob", "plug", "sink")
		ctx := context.Background()
		f.mu.Lock()
		f.failCID = "first"
		f.mu.Unlock()
		holdCommit(t, f, svc, 2, func(wg *sync.WaitGroup) {
			for _, cid := range []string{"first", "second"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = svc.Send(ctx, &chat.Draft{From: "alice", To: "bob", Type: "text", Body: text(cid), CID: cid})
				}()
				if cid == "first" { // queued in this order
					testutil.Eventually(t, 10*time.Second, func() error {
						if svc.QueueLen() < 1 {
							return errors.New("first not queued yet")
						}
						return nil
					})
				}
			}
		})
		c, err := f.Store.Conversation(ctx, "bob", chat.DirectConv("alice", "bob"))
		if err != nil {
			t.Fatalf("bob has no conversation with alice: %v", err)
		}
		if c.LastSeq != 1 || c.ReadSeq != 0 {
			t.Fatalf("bob's view: last %d read %d, want 1 unread", c.LastSeq, c.ReadSeq)
		}
	})
}

// A membership load that read the store before a kick must not put the
// kicked member back into the cache after the kick's own update.
func TestCacheLoadRacingKick(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		f, svc := newFaulty(t, backend, time.Minute, "owner", "x", "plug", "sink")
		ctx := context.Background()
		// Another node creates the group, so this service has not cached it.
		other := startService(t, f.Store, 0)
		if _, _, err := other.CreateGroup(ctx, chat.Actor{UserID: "owner"}, chat.NewGroup{ID: "G", Name: "g", Owner: "owner", Members: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		f.mu.Lock()
		f.holdRead = release
		f.mu.Unlock()
		done := make(chan struct{})
		go func() { // the ACL check of a delivery, say: loads the group
			defer close(done)
			_, _ = svc.IsMember(ctx, "G", "x")
		}()
		<-f.readTaken // it has read the members: x is one
		if err := svc.RemoveMember(ctx, chat.Actor{UserID: "owner"}, "G", "x"); err != nil {
			t.Fatal(err)
		}
		close(release)
		<-done
		if ok, _ := svc.IsMember(ctx, "G", "x"); ok {
			t.Error("the kicked member is back in the cache")
		}
		if _, err := svc.Send(ctx, &chat.Draft{From: "x", Group: "G", Type: "text", Body: text("still here")}); err == nil {
			t.Error("the kicked member could still send")
		}
	})
}

// A system message the service attributes to a non-member does not make
// them a reader of the group.
func TestSystemMessageFromOutsider(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		f, svc := newFaulty(t, backend, time.Minute, "owner", "eve")
		ctx := context.Background()
		if _, _, err := svc.CreateGroup(ctx, chat.Actor{UserID: "owner"}, chat.NewGroup{ID: "G", Name: "g", Owner: "owner"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Send(ctx, &chat.Draft{System: true, From: "eve", Group: "G", Type: "system", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Store.Conversation(ctx, "eve", "g:G"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("non-member eve got a conversation row: %v", err)
		}
	})
}
