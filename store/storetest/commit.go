package storetest

import (
	"slices"
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
	{"ReaderMovesOnlyTheReader", testCommitReader},
	{"GroupIsMsgTo", testCommitGroupID},
	{"KindRequired", testCommitKindRequired},
}

// wantAbsent checks that none of the messages was stored.
func (f *fixture) wantAbsent(ms ...*store.Message) {
	f.t.Helper()
	for _, m := range ms {
		for _, got := range f.history(m.Conv) {
			if got.ID == m.ID {
				f.t.Errorf("message %s of a failed batch was stored: %+v", m.ID, got)
			}
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
	m1 := withCID(dm("m1", 1, "alice", "bob", base+1), "c-1")
	f.commit(firstDM(m1))

	fresh := withCID(dm("x1", 1, "alice", "dave", base+2), "c-x1")
	next := withCID(dm("x2", 2, "alice", "bob", base+3), "c-x2")
	dup := withCID(dm("x3", 1, "bob", "alice", base+4), "c-x3") // seq 1 of d:alice:bob is taken
	for _, order := range [][]store.Write{
		{firstDM(fresh), direct(next), direct(dup)},
		{direct(dup), firstDM(fresh), direct(next)},
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
	f.commit(firstDM(fresh), direct(next))
	f.wantLastSeq(ab, 2)
	f.wantLastSeq(ad, 1)
	f.wantState("dave", ad, 1, 0, 0)
	f.wantState("bob", ab, 2, 0, 0)
}

func testCommitDuplicateCID(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	m1 := withCID(dm("m1", 1, "alice", "bob", base+1), "c-1")
	f.commit(firstDM(m1))

	other := withCID(dm("x1", 1, "alice", "carol", base+2), "c-2")
	resend := withCID(dm("x2", 2, "alice", "bob", base+3), "c-1") // a resend of c-1 with a new seq
	f.conflictingBatch("batch with a taken (sender, cid)", firstDM(other), direct(resend))
	f.wantAbsent(other, resend)
	f.wantLastSeq(ab, 1)
	f.wantLastSeq(ac, 0)
	got, err := f.st.MessagesByCID(f.ctx, [][2]string{{"alice", "c-1"}})
	if err != nil {
		t.Fatal(err)
	}
	wantMessage(t, "the original of c-1", got["alice\x00c-1"], m1)

	// The same cid from another sender is no conflict.
	bobs := withCID(dm("x3", 2, "bob", "alice", base+4), "c-1")
	f.commit(direct(bobs))
	f.wantLastSeq(ab, 2)
}

func testCommitDuplicateWithinBatch(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	a := withCID(dm("m1", 1, "alice", "bob", base+1), "same")
	b := withCID(dm("m2", 2, "alice", "bob", base+2), "same")
	f.conflictingBatch("two messages with one (sender, cid) in a batch", firstDM(a), direct(b))
	f.wantAbsent(a, b)
	f.wantLastSeq(ab, 0)

	c := dm("m3", 1, "alice", "bob", base+3)
	d := dm("m4", 1, "bob", "alice", base+4)
	f.conflictingBatch("two messages with one (conv, seq) in a batch", firstDM(c), direct(d))
	f.wantAbsent(c, d)
	f.wantLastSeq(ab, 0)

	e := dm("m5", 1, "alice", "bob", base+5)
	g := dm("m5", 2, "alice", "bob", base+6)
	f.conflictingBatch("two messages with one id in a batch", firstDM(e), direct(g))
	f.wantLastSeq(ab, 0)
}

func testCommitEmptyCID(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	m1, m2 := dm("m1", 1, "alice", "bob", base+1), dm("m2", 2, "alice", "bob", base+2)
	f.commit(firstDM(m1), direct(m2))
	m3 := dm("m3", 3, "alice", "bob", base+3)
	f.commit(direct(m3))
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
		direct(dmsg),
		joins(join, "carol", "bob"))
	f.wantAbsent(dmsg, join)
	f.wantLastSeq(ab, 1)
	f.wantLastSeq("g:g1", 1)
	f.wantState("bob", ab, 1, 0, 0)
	f.wantState("bob", "g:g1", 1, 1, 0)
	if f.isMember("g1", "carol") {
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

// Reader, not the sender, names whose read position moves: a write with a
// Reader raises that user alone, one without raises nobody, and a system
// message attributed to a non-member leaves no trace of them.
func testCommitReader(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))

	toBob := direct(dm("m2", 2, "alice", "bob", base+2))
	toBob.Reader = "bob"
	f.commit(toBob)
	f.wantState("alice", ab, 2, 1, 0)
	f.wantState("bob", ab, 2, 2, 0)

	unread := direct(dm("m3", 3, "alice", "bob", base+3))
	unread.Reader = ""
	f.commit(unread)
	f.wantState("alice", ab, 3, 1, 0)
	f.wantState("bob", ab, 3, 2, 0)

	g := "g:g1"
	f.commit(createGroup("c1", "g1", "olga", base+10, "carol"))
	// Attributed to dave, who is not a member (the service key may name
	// anyone), and read by nobody.
	byDave := sys("c2", "g1", 2, "notice", base+11)
	byDave.From = "dave"
	f.commit(event(byDave))
	if _, err := f.st.Conversation(f.ctx, "dave", g); err == nil {
		t.Error("a system message attributed to a non-member made them a conversation member")
	}
	if cs := f.conversations("dave", store.ConvQuery{Limit: 10}); len(cs) != 0 {
		t.Errorf("Conversations(dave) = %v, want none", convIDs(cs))
	}
	f.wantState("olga", g, 2, 1, 0)
	f.wantState("carol", g, 2, 1, 0)

	// Attributed to a member, still without a reader: not even they move.
	byOlga := sys("c3", "g1", 3, "notice", base+12)
	byOlga.From = "olga"
	f.commit(event(byOlga))
	f.wantState("olga", g, 3, 1, 0)

	// The reader of a $system message, and of a user message sent by
	// another member: only they move.
	f.commit(store.Write{Msg: sys("c4", "g1", 4, "notice", base+13), Kind: store.KindGroup, Reader: "carol"})
	f.wantState("carol", g, 4, 4, 0)
	f.wantState("olga", g, 4, 1, 0)
	byCarol := post(gm("m5", "g1", 5, "carol", base+14))
	byCarol.Reader = "olga"
	f.commit(byCarol)
	f.wantState("olga", g, 5, 5, 0)
	f.wantState("carol", g, 5, 4, 0)

	// A former member's position stays at the leave, reader or not.
	f.commit(leaves(sys("c6", "g1", 6, "left", base+15), "carol"))
	f.commit(store.Write{Msg: sys("c7", "g1", 7, "notice", base+16), Kind: store.KindGroup, Reader: "carol"})
	if c := f.conv("carol", g); c.Active || c.LastSeq != 7 || c.ReadSeq != 6 {
		t.Errorf("carol, who left at seq 6, read by a later write: Active %v, last_seq %d, read_seq %d; want inactive, last_seq 7, read_seq 6",
			c.Active, c.LastSeq, c.ReadSeq)
	}
}

// The group a write changes is Msg.To, whatever the conversation's id looks
// like; the kind of a conversation is the one its writes name.
func testCommitGroupID(t *testing.T, f *fixture) {
	const room = "room-7" // not built from the group id
	roomEvent := func(id string, seq int64, ts int64) *store.Message {
		m := sys(id, "team", seq, "changed", ts)
		m.Conv = room
		return m
	}
	f.commit(store.Write{
		Msg: roomEvent("c1", 1, base+1), Kind: store.KindGroup,
		NewGroup:   &store.Group{ID: "team", Name: "Team", Owner: "olga", JoinPolicy: "invite", CreatedAt: base + 1, UpdatedAt: base + 1},
		AddMembers: []store.Member{{UserID: "olga", Role: store.RoleOwner}, {UserID: "bob", Role: store.RoleMember}},
	})
	if g, err := f.st.Group(f.ctx, "team"); err != nil || g.Name != "Team" {
		t.Fatalf("Group(team) = %+v, %v", g, err)
	}
	if c := f.wantState("bob", room, 1, 1, 0); c.Kind != store.KindGroup {
		t.Errorf("Kind of %s = %q, want %q", room, c.Kind, store.KindGroup)
	}
	f.commit(joins(roomEvent("c2", 2, base+2), "carol"))
	f.commit(store.Write{Msg: roomEvent("c3", 3, base+3), Kind: store.KindGroup, UpdateMembers: []store.Member{{UserID: "bob", Role: store.RoleAdmin, MutedUntil: base + 99}}})
	f.commit(leaves(roomEvent("c4", 4, base+4), "olga"))
	want := []store.Member{
		{GroupID: "team", UserID: "bob", Role: store.RoleAdmin, MutedUntil: base + 99, JoinSeq: 1, JoinedAt: base + 1},
		{GroupID: "team", UserID: "carol", Role: store.RoleMember, JoinSeq: 2, JoinedAt: base + 2},
	}
	if got := f.members("team"); !slices.Equal(got, want) {
		t.Errorf("Members(team) = %+v, want %+v", got, want)
	}
	for uid, want := range map[string][]string{"bob": {"team"}, "carol": {"team"}, "olga": {}} {
		if gs := f.userGroups(uid); !slices.Equal(gs, want) {
			t.Errorf("UserGroups(%s) = %v, want %v", uid, gs, want)
		}
	}
	f.wantState("carol", room, 4, 2, 1)
	if c := f.conv("olga", room); c.Active || c.ReadSeq != 4 {
		t.Errorf("olga's row after leaving: Active %v, read_seq %d; want inactive at 4", c.Active, c.ReadSeq)
	}

	// A direct conversation whose id looks like a group's is direct.
	odd := dm("d1", 1, "alice", "bob", base+5)
	odd.Conv = "g:team"
	f.commit(firstDM(odd))
	if c := f.wantState("bob", "g:team", 1, 0, 0); c.Kind != store.KindDirect {
		t.Errorf("Kind of direct conversation g:team = %q, want %q", c.Kind, store.KindDirect)
	}
	if got := f.members("team"); !slices.Equal(got, want) {
		t.Errorf("Members(team) after a direct write = %+v, want %+v", got, want)
	}
}

// A write must name its kind, and a group write its group; a batch with a
// write that does not is refused whole.
func testCommitKindRequired(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	noGroup := sys("c1", "g1", 1, "created", base+2)
	noGroup.To = ""
	bad := []struct {
		what string
		w    store.Write
	}{
		{"a write without Kind", store.Write{Msg: dm("x1", 1, "alice", "carol", base+2), Participants: []string{"alice", "carol"}}},
		{"a write of an unknown Kind", store.Write{Msg: dm("x1", 1, "alice", "carol", base+2), Kind: "channel", Participants: []string{"alice", "carol"}}},
		{"a group write without a group id", store.Write{Msg: noGroup, Kind: store.KindGroup, AddMembers: []store.Member{{UserID: "olga", Role: store.RoleOwner}}}},
		{"group changes in a direct write", store.Write{Msg: dm("x1", 1, "alice", "carol", base+2), Kind: store.KindDirect, AddMembers: []store.Member{{UserID: "carol", Role: store.RoleMember}}}},
	}
	for _, b := range bad {
		ok := firstDM(dm("m1", 1, "alice", "bob", base+1))
		if err := f.st.Commit(f.ctx, []store.Write{ok, b.w}); err == nil {
			t.Errorf("Commit of a batch with %s: no error", b.what)
		}
		f.wantAbsent(ok.Msg, b.w.Msg)
		f.wantLastSeq(ab, 0)
		f.wantLastSeq(b.w.Msg.Conv, 0)
	}
	if ms := f.members("g1"); len(ms) != 0 {
		t.Errorf("Members(g1) = %v, want none", memberIDs(ms))
	}
}
