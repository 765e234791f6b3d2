package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mqim/mqim/store"
)

var concurrencyTests = []test{
	{"MarkRead", testConcurrentMarkRead},
	{"UpsertUser", testConcurrentUpsertUser},
	{"CommitSameSeq", testConcurrentCommitSameSeq},
	{"NewConversations", testConcurrentNewConversations},
	{"Mixed", testConcurrentMixed},
}

const workers = 8

func testConcurrentMarkRead(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	batch := []store.Write{firstDM(dm("m1", 1, "alice", "bob", base+1))}
	for i := int64(2); i <= 50; i++ {
		batch = append(batch, direct(dm(fmt.Sprintf("m%d", i), i, "alice", "bob", base+i)))
	}
	f.commit(batch...)
	f.commit(createGroup("c1", "g1", "olga", base+100, "carol", "dave"))
	batch = nil
	for i := int64(2); i <= 30; i++ {
		batch = append(batch, post(gm(fmt.Sprintf("g%d", i), "g1", i, "olga", base+100+i)))
	}
	f.commit(batch...)

	type reader struct {
		user, conv string
		last       int64
	}
	readers := []reader{{"bob", ab, 50}, {"carol", "g:g1", 30}, {"dave", "g:g1", 30}, {"alice", ab, 50}}
	var wg sync.WaitGroup
	for w := range workers {
		r := readers[w%len(readers)]
		wg.Go(func() {
			var prev int64
			// Each worker walks the seqs in its own order, past last_seq.
			for i := range r.last + 10 {
				seq := (i*int64(7+2*w))%(r.last+10) + 1
				got, _, err := f.st.MarkRead(f.ctx, r.user, r.conv, seq)
				if err != nil {
					t.Errorf("MarkRead(%s, %s, %d): %v", r.user, r.conv, seq, err)
					return
				}
				if got < min(seq, r.last) || got > r.last || got < prev {
					t.Errorf("MarkRead(%s, %s, %d) = %d (previous result %d, last_seq %d)", r.user, r.conv, seq, got, prev, r.last)
					return
				}
				prev = got
			}
		})
	}
	wg.Wait()
	f.wantState("bob", ab, 50, 50, 0)
	f.wantState("alice", ab, 50, 50, 0)
	f.wantState("carol", "g:g1", 30, 30, 0)
	f.wantState("dave", "g:g1", 30, 30, 0)
}

func testConcurrentUpsertUser(t *testing.T, f *fixture) {
	var sharedCreated atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			own := fmt.Sprintf("u%d", w)
			for i := range 10 {
				created, err := f.st.UpsertUser(f.ctx, &store.User{ID: "shared", Name: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					t.Errorf("UpsertUser(shared) #%d of worker %d: %v", i, w, err)
					return
				}
				if created {
					sharedCreated.Add(1)
				}
				created, err = f.st.UpsertUser(f.ctx, &store.User{ID: own, Name: fmt.Sprint(i)})
				if err != nil {
					t.Errorf("UpsertUser(%s) #%d: %v", own, i, err)
					return
				}
				if created != (i == 0) {
					t.Errorf("UpsertUser(%s) #%d: created = %v", own, i, created)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if n := sharedCreated.Load(); n != 1 {
		t.Errorf("concurrent upserts of one new user reported created %d times, want exactly once", n)
	}
	users, err := f.st.UsersByID(f.ctx, []string{"shared", "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != workers+1 {
		t.Errorf("UsersByID found %d users, want %d", len(users), workers+1)
	}
	for id, u := range users {
		if id != "shared" && u.Name != "9" {
			t.Errorf("user %s: Name %q, want the last update %q", id, u.Name, "9")
		}
	}
}

// Several writers race for the same (conv, seq): exactly one wins, the
// others get ErrConflict (so they reload and retry), and the history has no
// gaps or duplicates.
func testConcurrentCommitSameSeq(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	const rounds = 10
	for seq := int64(1); seq <= rounds; seq++ {
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range 4 {
			from, to := "alice", "bob"
			if w%2 == 1 {
				from, to = to, from
			}
			m := dm(fmt.Sprintf("r%d-w%d", seq, w), seq, from, to, base+seq)
			m.CID = m.ID
			wr := direct(m)
			if seq == 1 {
				wr = firstDM(m)
			}
			wg.Go(func() {
				<-start
				err := f.st.Commit(f.ctx, []store.Write{wr})
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("racing Commit of seq %d: %v (want nil or ErrConflict)", seq, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 3 {
			t.Fatalf("seq %d: %d commits won and %d got ErrConflict, want 1 and 3", seq, wins.Load(), conflicts.Load())
		}
	}
	ms := f.history(ab)
	if len(ms) != rounds {
		t.Fatalf("history has %d messages, want %d: %v", len(ms), rounds, ids(ms))
	}
	for i, m := range ms {
		if m.Seq != int64(i+1) {
			t.Errorf("history[%d] has seq %d", i, m.Seq)
		}
	}
	f.wantLastSeq(ab, rounds)
	last := ms[rounds-1]
	for _, u := range []string{"alice", "bob"} {
		c := f.conv(u, ab)
		if c.LastSeq != rounds || c.LastMessage == nil || c.LastMessage.ID != last.ID {
			t.Errorf("%s's view after the race: %+v", u, c)
		}
	}
}

// Writers each opening new conversations at the same time (the first
// message creates the conversation row) must not fail each other.
func testConcurrentNewConversations(t *testing.T, f *fixture) {
	const perWorker = 15
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range perWorker {
				from, to := fmt.Sprintf("w%d", w), fmt.Sprintf("peer%02d", i)
				m := dm(fmt.Sprintf("m-%d-%d", w, i), 1, from, to, base+int64(i))
				if err := f.st.Commit(f.ctx, []store.Write{firstDM(m)}); err != nil {
					t.Errorf("Commit of a new conversation %s: %v", m.Conv, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for w := range workers {
		cs := f.conversations(fmt.Sprintf("w%d", w), store.ConvQuery{Limit: 100})
		if len(cs) != perWorker {
			t.Errorf("w%d has %d conversations, want %d", w, len(cs), perWorker)
		}
	}
}

// Every kind of write at once: none may fail with a busy/locked error.
func testConcurrentMixed(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m0", 1, "alice", "bob", base)))
	f.commit(createGroup("c1", "g1", "olga", base, "bob", "carol"))
	const n = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	run := func(what string, op func(i int) error) {
		wg.Go(func() {
			<-start
			for i := range n {
				if err := op(i); err != nil {
					t.Errorf("%s #%d: %v", what, i, err)
					return
				}
			}
		})
	}
	run("Commit d:alice:bob", func(i int) error {
		seq := int64(i + 2)
		return f.st.Commit(f.ctx, []store.Write{direct(dm(fmt.Sprintf("m%d", seq), seq, "alice", "bob", base+seq))})
	})
	run("Commit g:g1", func(i int) error {
		seq := int64(i + 2)
		return f.st.Commit(f.ctx, []store.Write{post(gm(fmt.Sprintf("g%d", seq), "g1", seq, "olga", base+seq))})
	})
	run("MarkRead bob", func(i int) error {
		_, _, err := f.st.MarkRead(f.ctx, "bob", ab, int64(i+1))
		return err
	})
	run("MarkRead carol", func(i int) error {
		_, _, err := f.st.MarkRead(f.ctx, "carol", "g:g1", int64(i+1))
		return err
	})
	run("SetConvPrefs", func(i int) error {
		_, err := f.st.SetConvPrefs(f.ctx, "bob", "g:g1", store.ConvPrefs{Pinned: ptr(i%2 == 0)})
		return err
	})
	run("UpsertUser", func(i int) error {
		_, err := f.st.UpsertUser(f.ctx, &store.User{ID: "alice", Name: fmt.Sprint(i)})
		return err
	})
	run("PutDevice", func(i int) error {
		return f.st.PutDevice(f.ctx, &store.Device{UserID: "bob", DeviceID: fmt.Sprintf("d%d", i%3), Platform: "ios", Token: fmt.Sprintf("t%d", i)})
	})
	run("reads", func(i int) error {
		if _, err := f.st.Conversations(f.ctx, "bob", store.ConvQuery{Limit: 10}); err != nil {
			return err
		}
		_, err := f.st.Messages(f.ctx, ab, store.MsgQuery{Limit: 100})
		return err
	})
	close(start)
	wg.Wait()
	f.wantLastSeq(ab, n+1)
	f.wantLastSeq("g:g1", n+1)
	f.wantState("alice", ab, n+1, n+1, 0)
	if c := f.conv("bob", ab); c.ReadSeq > n+1 || c.ReadSeq < 1 {
		t.Errorf("bob's read_seq = %d", c.ReadSeq)
	}
	if ds, err := f.st.Devices(f.ctx, "bob"); err != nil || len(ds) != 3 {
		t.Errorf("Devices(bob) = %+v, %v; want 3", ds, err)
	}
}
