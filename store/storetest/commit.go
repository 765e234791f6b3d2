package storetest

import (
	"testing"

	"github.com/mqim/mqim/store"
)

var commitTests = []test{
	{"DuplicateSeqRollsBackBatch", testCommitDuplicateSeq},
	{"DuplicateCIDRollsBackBatch", testCommitDuplicateCID},
	{"DuplicateWithinBatch", testCommitDuplicateWithinBatch},
	{"EmptyCIDNeverConflicts", testCommitEmptyCID},
	{"LateFailureRollsBackBatch", testCommitLateFailure},
	{"EmptyBatch", testCommitEmpty},
}

// wantAbsent checks that none of the messages was stored.
func (f *fixture) wantAbsent(ms ...*store.Message) {
	f.t.Helper()
	for _, m := range ms {
		if got, err := f.st.Message(f.ctx, m.ID); err == nil {
			f.t.Errorf("message %s of a failed batch was stored: %+v", m.ID, got)
		}
		if m.CID != "" {
			got, err := f.st.MessagesByCID(f.ctx, [][2]string{{m.From, m.CID}})
			if err != nil {
				f.t.Fatal(err)
			}
			if g := got[m.From+"\x00"+m.CID]; g != nil && g.ID == m.ID {
				f.t.Errorf("message %s of a failed batch is found by cid", m.ID)
			}
		}
	}
}

func (f *fixture) wantLastSeq(conv string, want int64) {
	f.t.Helper()
	got, ok := f.lastSeq(conv)
	if want == 0 {
		if ok {
			f.t.Errorf("conversation %s exists after a failed batch (last_seq %d)", conv, got)
		}
		return
	}
	if got != want {
		f.t.Errorf("last_seq of %s = %d (present %v), want %d", conv, got, ok, want)
	}
}

// conflictingBatch commits the batch, which must fail with ErrConflict and
// leave no trace.
func (f *fixture) conflictingBatch(what string, batch ...store.Write) {
	f.t.Helper()
	err := f.st.Commit(f.ctx, batch)
	wantErr(f.t, what, err, store.ErrConflict)
}

func testCommitDuplicateSeq(t *testing.T, f *fixture) {
	ab, ad := directConv("alice", "bob"), directConv("alice", "dave")
	m1 := dm("m1", 1, "alice", "bob", base+1)
	m1.CID = "c-1"
	f.commit(firstDM(m1))

	fresh := dm("x1", 1, "alice", "dave", base+2)
	fresh.CID = "c-x1"
	next := dm("x2", 2, "alice", "bob", base+3)
	next.CID = "c-x2"
	dup := dm("x3", 1, "bob", "alice", base+4) // seq 1 of d:alice:bob is taken
	dup.CID = "c-x3"
	for _, order := range [][]store.Write{
		{firstDM(fresh), {Msg: next}, {Msg: dup}},
		{{Msg: dup}, firstDM(fresh), {Msg: next}},
	} {
		f.conflictingBatch("batch with a taken (conv, seq)", order...)
		f.wantAbsent(fresh, next, dup)
		f.wantLastSeq(ab, 1)
		f.wantLastSeq(ad, 0)
		wantMessages(t, "d:alice:bob after the failed batch", f.history(ab), m1)
		_, err := f.st.Conversation(f.ctx, "dave", ad)
		wantErr(t, "dave's conversation from the failed batch", err, store.ErrNotFound)
		f.wantState("alice", ab, 1, 1, 0)
		f.wantState("bob", ab, 1, 0, 0)
	}

	// The batch without the offender goes through: nothing was left half-done.
	f.commit(firstDM(fresh), store.Write{Msg: next})
	f.wantLastSeq(ab, 2)
	f.wantLastSeq(ad, 1)
	f.wantState("dave", ad, 1, 0, 0)
	f.wantState("bob", ab, 2, 0, 0)
}

func testCommitDuplicateCID(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	m1 := dm("m1", 1, "alice", "bob", base+1)
	m1.CID = "c-1"
	f.commit(firstDM(m1))

	other := dm("x1", 1, "alice", "carol", base+2)
	other.CID = "c-2"
	resend := dm("x2", 2, "alice", "bob", base+3) // a resend of c-1 with a new seq
	resend.CID = "c-1"
	f.conflictingBatch("batch with a taken (sender, cid)", firstDM(other), store.Write{Msg: resend})
	f.wantAbsent(other, resend)
	f.wantLastSeq(ab, 1)
	f.wantLastSeq(ac, 0)
	got, err := f.st.MessagesByCID(f.ctx, [][2]string{{"alice", "c-1"}})
	if err != nil {
		t.Fatal(err)
	}
	wantMessage(t, "the original of c-1", got["alice\x00c-1"], m1)

	// The same cid from another sender is no conflict.
	bobs := dm("x3", 2, "bob", "alice", base+4)
	bobs.CID = "c-1"
	f.commit(store.Write{Msg: bobs})
	f.wantLastSeq(ab, 2)
}

func testCommitDuplicateWithinBatch(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	a := dm("m1", 1, "alice", "bob", base+1)
	a.CID = "same"
	b := dm("m2", 2, "alice", "bob", base+2)
	b.CID = "same"
	f.conflictingBatch("two messages with one (sender, cid) in a batch", firstDM(a), store.Write{Msg: b})
	f.wantAbsent(a, b)
	f.wantLastSeq(ab, 0)

	c := dm("m3", 1, "alice", "bob", base+3)
	d := dm("m4", 1, "bob", "alice", base+4)
	f.conflictingBatch("two messages with one (conv, seq) in a batch", firstDM(c), store.Write{Msg: d})
	f.wantAbsent(c, d)
	f.wantLastSeq(ab, 0)

	e := dm("m5", 1, "alice", "bob", base+5)
	g := dm("m5", 2, "alice", "bob", base+6)
	f.conflictingBatch("two messages with one id in a batch", firstDM(e), store.Write{Msg: g})
	f.wantLastSeq(ab, 0)
}

func testCommitEmptyCID(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	m1, m2 := dm("m1", 1, "alice", "bob", base+1), dm("m2", 2, "alice", "bob", base+2)
	f.commit(firstDM(m1), store.Write{Msg: m2})
	m3 := dm("m3", 3, "alice", "bob", base+3)
	f.commit(store.Write{Msg: m3})
	wantMessages(t, "messages without cid", f.history(ab), m1, m2, m3)
	for _, m := range f.history(ab) {
		if m.CID != "" {
			t.Errorf("message %s without cid reads back with CID %q", m.ID, m.CID)
		}
	}
}

// A failure after the messages are inserted and the conversation updated
// (here: a member already in the group) must undo all of it.
func testCommitLateFailure(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob"))
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+2)))

	dmsg := dm("m2", 2, "alice", "bob", base+3)
	join := sys("c2", "g1", 2, "joined", base+3)
	f.conflictingBatch("AddMembers of a member already in the group",
		store.Write{Msg: dmsg},
		store.Write{Msg: join, AddMembers: []store.Member{{UserID: "carol", Role: store.RoleMember}, {UserID: "bob", Role: store.RoleMember}}})
	f.wantAbsent(dmsg, join)
	f.wantLastSeq(ab, 1)
	f.wantLastSeq("g:g1", 1)
	f.wantState("bob", ab, 1, 0, 0)
	f.wantState("bob", "g:g1", 1, 1, 0)
	if _, err := f.st.Member(f.ctx, "g1", "carol"); err == nil {
		t.Error("carol became a member in a failed batch")
	}
	if _, err := f.st.Conversation(f.ctx, "carol", "g:g1"); err == nil {
		t.Error("carol got the group conversation in a failed batch")
	}
	if c := f.conv("olga", "g:g1"); c.LastMessage == nil || c.LastMessage.ID != "c1" || c.UpdatedAt != base+1 {
		t.Errorf("group conversation changed by a failed batch: %+v", c)
	}

	// A group id already taken.
	g2 := createGroup("c3", "g2", "olga", base+4, "carol")
	g2.NewGroup.ID = "g1"
	f.conflictingBatch("NewGroup with a taken id", g2)
	f.wantAbsent(g2.Msg)
	f.wantLastSeq("g:g2", 0)
	if _, err := f.st.Conversation(f.ctx, "carol", "g:g2"); err == nil {
		t.Error("carol got a conversation from a failed batch")
	}
	if g, err := f.st.Group(f.ctx, "g1"); err != nil || g.Name != "group g1" {
		t.Errorf("group g1 after a failed re-create: %+v, %v", g, err)
	}
}

func testCommitEmpty(t *testing.T, f *fixture) {
	if err := f.st.Commit(f.ctx, nil); err != nil {
		t.Fatalf("Commit(nil): %v", err)
	}
}
