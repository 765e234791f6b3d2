package storetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/mqim/mqim/store"
)

var conversationTests = []test{
	{"ListNewestFirst", testConversations},
	{"CursorPaging", testConversationsCursor},
	{"PinnedFirst", testPinnedFirst},
	{"Unreads", testUnreads},
	{"MarkRead", testMarkRead},
	{"MarkReadNotFound", testMarkReadNotFound},
	{"Prefs", testConvPrefs},
	{"PrefsNotFound", testConvPrefsNotFound},
	{"OwnChangesMoveUpdatedAt", testOwnChangesMoveUpdatedAt},
	{"Contacts", testContacts},
	{"NewMessageUnhides", testUnhide},
	{"PushStates", testPushStates},
}

func (f *fixture) conversations(uid string, q store.ConvQuery) []store.Conversation {
	f.t.Helper()
	cs, err := f.st.Conversations(f.ctx, uid, q)
	if err != nil {
		f.t.Fatalf("Conversations(%s, %+v): %v", uid, q, err)
	}
	return cs
}

func testConversations(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	mAB := dm("m1", 1, "alice", "bob", base+100)
	f.commit(firstDM(mAB))
	f.commit(createGroup("g1", "g1", "bob", base+200, "alice"))
	mG := gm("g2", "g1", 2, "bob", base+250)
	f.commit(post(mG))
	mAC1, mAC2 := dm("m2", 1, "carol", "alice", base+290), dm("m3", 2, "carol", "alice", base+300)
	f.commit(firstDM(mAC1), direct(mAC2))

	check := func(what string, got []store.Conversation, want ...string) {
		t.Helper()
		if !slices.Equal(convIDs(got), want) {
			t.Errorf("%s = %v, want %v", what, convIDs(got), want)
		}
	}
	all := f.conversations("alice", store.ConvQuery{Limit: 10})
	check("Conversations(alice)", all, ac, "g:g1", ab)
	if len(all) == 3 {
		type view struct {
			kind            string
			last, read, upd int64
			lastMsg         *store.Message
		}
		want := []view{
			{store.KindDirect, 2, 0, base + 300, mAC2},
			{store.KindGroup, 2, 1, base + 250, mG},
			{store.KindDirect, 1, 1, base + 100, mAB},
		}
		for i, c := range all {
			w := want[i]
			if c.Kind != w.kind || c.LastSeq != w.last || c.ReadSeq != w.read || c.UpdatedAt != w.upd || !c.Active {
				t.Errorf("Conversations(alice)[%d] = %+v, want kind %s last %d read %d updated %d", i, c, w.kind, w.last, w.read, w.upd)
			}
			wantMessage(t, "LastMessage of "+c.ID, c.LastMessage, w.lastMsg)
		}
	}
	check("Conversations(alice, limit 2)", f.conversations("alice", store.ConvQuery{Limit: 2}), ac, "g:g1")
	check("Conversations(alice, limit 1)", f.conversations("alice", store.ConvQuery{Limit: 1}), ac)
	check("Conversations(alice, after 150)", f.conversations("alice", store.ConvQuery{UpdatedAfter: base + 150, Limit: 10}), ac, "g:g1")
	check("Conversations(alice, after 250)", f.conversations("alice", store.ConvQuery{UpdatedAfter: base + 250, Limit: 10}), ac)
	check("Conversations(alice, after 300)", f.conversations("alice", store.ConvQuery{UpdatedAfter: base + 300, Limit: 10}))
	check("Conversations(bob)", f.conversations("bob", store.ConvQuery{Limit: 10}), "g:g1", ab)
	check("Conversations(carol)", f.conversations("carol", store.ConvQuery{Limit: 10}), ac)
	check("Conversations(nobody)", f.conversations("nobody", store.ConvQuery{Limit: 10}))

	// A new message moves its conversation to the front and past the
	// updated_after cursor.
	mAB2 := dm("m4", 2, "bob", "alice", base+400)
	f.commit(direct(mAB2))
	check("Conversations(alice) after a new message", f.conversations("alice", store.ConvQuery{Limit: 10}), ab, ac, "g:g1")
	got := f.conversations("alice", store.ConvQuery{UpdatedAfter: base + 300, Limit: 10})
	check("Conversations(alice, after 300) after a new message", got, ab)
	if len(got) == 1 {
		if got[0].UpdatedAt != base+400 || got[0].LastSeq != 2 || got[0].ReadSeq != 1 {
			t.Errorf("updated conversation = %+v", got[0])
		}
		wantMessage(t, "new LastMessage", got[0].LastMessage, mAB2)
	}
}

// Pages of a list with ties on updated_at: the cursor is the last row of
// the previous page; the next page starts strictly after
// it in the list order (updated_at descending, then id ascending).
func testConversationsCursor(t *testing.T, f *fixture) {
	// alice talks to p0..p6; p1, p2 and p3 share a timestamp, as do p5, p6.
	ts := []int64{base + 10, base + 50, base + 50, base + 50, base + 30, base + 20, base + 20}
	for i, at := range ts {
		f.commit(firstDM(dm(fmt.Sprintf("m%d", i), 1, fmt.Sprintf("p%d", i), "alice", at)))
	}
	want := []string{"d:alice:p1", "d:alice:p2", "d:alice:p3", "d:alice:p4", "d:alice:p5", "d:alice:p6", "d:alice:p0"}
	if got := convIDs(f.conversations("alice", store.ConvQuery{Limit: 100})); !slices.Equal(got, want) {
		t.Fatalf("Conversations(alice) = %v, want %v", got, want)
	}
	for _, size := range []int{1, 2, 3, 4} {
		var got []string
		q := store.ConvQuery{Limit: size}
		for page := 0; ; page++ {
			if page > len(want) {
				t.Fatalf("page size %d: paging does not end: %v", size, got)
			}
			cs := f.conversations("alice", q)
			if len(cs) > size {
				t.Fatalf("page size %d: got %d rows", size, len(cs))
			}
			for _, c := range cs {
				got = append(got, c.ID)
			}
			if len(cs) < size {
				break
			}
			q.After = cursorOf(cs[len(cs)-1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d = %v, want %v", size, got, want)
		}
	}
	// The cursor combines with updated_after.
	q := store.ConvQuery{UpdatedAfter: base + 20, After: &store.ConvCursor{UpdatedAt: base + 50, ID: "d:alice:p2"}, Limit: 100}
	if got := convIDs(f.conversations("alice", q)); !slices.Equal(got, []string{"d:alice:p3", "d:alice:p4"}) {
		t.Errorf("Conversations(alice, %+v) = %v, want [d:alice:p3 d:alice:p4]", q, got)
	}
}

func cursorOf(c store.Conversation) *store.ConvCursor {
	return &store.ConvCursor{Pinned: c.Pinned, UpdatedAt: c.UpdatedAt, ID: c.ID}
}

// Pinned conversations come first, each part newest first, and paging with
// the cursor crosses from the pinned part to the rest without losing or
// repeating a row, whatever the page size.
func testPinnedFirst(t *testing.T, f *fixture) {
	ts := []int64{base + 10, base + 50, base + 50, base + 50, base + 30, base + 20, base + 20}
	for i, at := range ts {
		f.commit(firstDM(dm(fmt.Sprintf("m%d", i), 1, fmt.Sprintf("p%d", i), "alice", at)))
	}
	for _, p := range []string{"p0", "p2", "p5"} {
		f.setPrefs("alice", directConv("alice", p), store.ConvPrefs{Pinned: ptr(true)})
	}
	all := f.conversations("alice", store.ConvQuery{Limit: 100})
	if len(all) != len(ts) {
		t.Fatalf("Conversations(alice) = %v, want %d rows", convIDs(all), len(ts))
	}
	pinned := map[string]bool{}
	for i, c := range all {
		if i < 3 != c.Pinned {
			t.Fatalf("Conversations(alice) = %v: row %d pinned %v, want the 3 pinned first", convIDs(all), i, c.Pinned)
		}
		pinned[c.ID] = c.Pinned
		if i > 0 {
			p := all[i-1]
			if p.Pinned == c.Pinned && (p.UpdatedAt < c.UpdatedAt || (p.UpdatedAt == c.UpdatedAt && p.ID > c.ID)) {
				t.Errorf("rows %d and %d out of order: %+v then %+v", i-1, i, p, c)
			}
		}
	}
	for _, p := range []string{"p0", "p2", "p5"} {
		if !pinned[directConv("alice", p)] {
			t.Errorf("%s not listed as pinned: %v", p, convIDs(all))
		}
	}
	if got, want := convIDs(all[3:]), []string{"d:alice:p1", "d:alice:p3", "d:alice:p4", "d:alice:p6"}; !slices.Equal(got, want) {
		t.Errorf("unpinned part = %v, want %v", got, want)
	}
	for size := 1; size <= 4; size++ {
		var got []string
		q := store.ConvQuery{Limit: size}
		for page := 0; page <= len(ts); page++ {
			cs := f.conversations("alice", q)
			got = append(got, convIDs(cs)...)
			if len(cs) < size {
				break
			}
			q.After = cursorOf(cs[len(cs)-1])
		}
		if !slices.Equal(got, convIDs(all)) {
			t.Errorf("pages of %d = %v, want %v", size, got, convIDs(all))
		}
	}
}

// Unreads lists the conversations with unread messages of an active member,
// muted ones flagged, none once read or left.
func testUnreads(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	f.commit(firstDM(dm("m1", 1, "bob", "alice", base+1)), direct(dm("m2", 2, "bob", "alice", base+2)))
	f.commit(firstDM(dm("m3", 1, "carol", "alice", base+3)))
	f.commit(createGroup("c1", "g1", "olga", base+4, "alice"))
	f.commit(post(gm("g2", "g1", 2, "olga", base+5)), post(gm("g3", "g1", 3, "olga", base+6)), post(gm("g4", "g1", 4, "olga", base+7)))
	f.setPrefs("alice", "g:g1", store.ConvPrefs{Muted: ptr(true)})
	check := func(what string, want ...store.Unread) {
		t.Helper()
		got, err := f.st.Unreads(f.ctx, "alice")
		if err != nil {
			t.Fatalf("%s: Unreads: %v", what, err)
		}
		if want == nil {
			want = []store.Unread{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Unreads(alice) = %+v, want %+v", what, got, want)
		}
	}
	check("start", store.Unread{Conv: ab, Unread: 2}, store.Unread{Conv: ac, Unread: 1}, store.Unread{Conv: "g:g1", Unread: 3, Muted: true})
	if _, _, err := f.st.MarkRead(f.ctx, "alice", ab, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.st.MarkRead(f.ctx, "alice", ac, 1); err != nil {
		t.Fatal(err)
	}
	check("after reads", store.Unread{Conv: ab, Unread: 1}, store.Unread{Conv: "g:g1", Unread: 3, Muted: true})
	f.commit(leaves(sys("c5", "g1", 5, "left", base+8), "alice"))
	check("after leaving g1", store.Unread{Conv: ab, Unread: 1})
	if got, err := f.st.Unreads(f.ctx, "nobody"); err != nil || len(got) != 0 {
		t.Errorf("Unreads(nobody) = %+v, %v; want none", got, err)
	}
}

func testMarkRead(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	for i := int64(2); i <= 5; i++ {
		f.commit(direct(dm(fmt.Sprintf("m%d", i), i, "alice", "bob", base+i)))
	}
	f.wantState("bob", ab, 5, 0, 0)

	steps := []struct {
		seq, want int64
		moved     bool
	}{
		{2, 2, true},   // raises
		{2, 2, false},  // same: no change, no error
		{1, 2, false},  // never lowers
		{0, 2, false},  // never lowers
		{4, 4, true},   // raises again
		{100, 5, true}, // capped at last_seq
		{3, 5, false},
		{100, 5, false},
	}
	for _, s := range steps {
		got, moved, err := f.st.MarkRead(f.ctx, "bob", ab, s.seq)
		if err != nil || got != s.want || moved != s.moved {
			t.Fatalf("MarkRead(bob, %d) = (%d, %v, %v), want (%d, %v, nil)", s.seq, got, moved, err, s.want, s.moved)
		}
		f.wantState("bob", ab, 5, s.want, 0)
	}
	// alice's own position is untouched by bob's reads.
	f.wantState("alice", ab, 5, 5, 0)

	f.commit(direct(dm("m6", 6, "alice", "bob", base+6)))
	f.wantState("bob", ab, 6, 5, 0)
	if got, _, err := f.st.MarkRead(f.ctx, "bob", ab, 6); err != nil || got != 6 {
		t.Fatalf("MarkRead(bob, 6) = (%d, %v), want (6, nil)", got, err)
	}

	// Groups too, from the join point.
	f.commit(createGroup("c1", "g1", "olga", base+10, "bob"))
	f.commit(post(gm("g2", "g1", 2, "olga", base+11)), post(gm("g3", "g1", 3, "olga", base+12)))
	if got, _, err := f.st.MarkRead(f.ctx, "bob", "g:g1", 2); err != nil || got != 2 {
		t.Fatalf("MarkRead(bob, g:g1, 2) = (%d, %v), want (2, nil)", got, err)
	}
	f.wantState("bob", "g:g1", 3, 2, 0)
}

func testMarkReadNotFound(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	_, _, err := f.st.MarkRead(f.ctx, "bob", "d:bob:zed", 1)
	wantErr(t, "MarkRead of an unknown conversation", err, store.ErrNotFound)
	_, _, err = f.st.MarkRead(f.ctx, "carol", ab, 1)
	wantErr(t, "MarkRead by a user outside the conversation", err, store.ErrNotFound)
	// Also when the capped seq would change nothing (MySQL reports 0 rows).
	_, _, err = f.st.MarkRead(f.ctx, "carol", ab, 0)
	wantErr(t, "MarkRead(seq 0) by a user outside the conversation", err, store.ErrNotFound)
	if _, err := f.st.Conversation(f.ctx, "carol", ab); err == nil {
		t.Error("MarkRead made carol a member")
	}
}

type prefs struct{ pinned, muted, hidden bool }

func (f *fixture) wantPrefs(uid, conv string, want prefs) {
	f.t.Helper()
	c := f.conv(uid, conv)
	if got := (prefs{c.Pinned, c.Muted, c.Hidden}); got != want {
		f.t.Errorf("%s's prefs of %s = %+v, want %+v", uid, conv, got, want)
	}
}

func (f *fixture) setPrefs(uid, conv string, p store.ConvPrefs) {
	f.t.Helper()
	if _, err := f.st.SetConvPrefs(f.ctx, uid, conv, p); err != nil {
		f.t.Fatalf("SetConvPrefs(%s, %s): %v", uid, conv, err)
	}
}

func testConvPrefs(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	f.wantPrefs("bob", ab, prefs{})

	f.setPrefs("bob", ab, store.ConvPrefs{Pinned: ptr(true)})
	f.wantPrefs("bob", ab, prefs{pinned: true})
	f.setPrefs("bob", ab, store.ConvPrefs{Muted: ptr(true)}) // pinned stays
	f.wantPrefs("bob", ab, prefs{pinned: true, muted: true})
	f.setPrefs("bob", ab, store.ConvPrefs{Hidden: ptr(true), Pinned: ptr(false)})
	f.wantPrefs("bob", ab, prefs{muted: true, hidden: true})
	f.setPrefs("bob", ab, store.ConvPrefs{}) // nothing to change
	f.wantPrefs("bob", ab, prefs{muted: true, hidden: true})
	f.setPrefs("bob", ab, store.ConvPrefs{Pinned: ptr(true), Muted: ptr(false), Hidden: ptr(false)})
	f.wantPrefs("bob", ab, prefs{pinned: true})
	// Per user: alice's are untouched.
	f.wantPrefs("alice", ab, prefs{})
	// Prefs do not touch the read position.
	f.wantState("bob", ab, 1, 0, 0)
}

func testConvPrefsNotFound(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	_, err := f.st.SetConvPrefs(f.ctx, "bob", "d:bob:zed", store.ConvPrefs{Pinned: ptr(true)})
	wantErr(t, "SetConvPrefs of an unknown conversation", err, store.ErrNotFound)
	_, err = f.st.SetConvPrefs(f.ctx, "carol", ab, store.ConvPrefs{Muted: ptr(true)})
	wantErr(t, "SetConvPrefs by a user outside the conversation", err, store.ErrNotFound)
	if _, err := f.st.Conversation(f.ctx, "carol", ab); err == nil {
		t.Error("SetConvPrefs made carol a member")
	}
}

func testUnhide(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	f.setPrefs("bob", ab, store.ConvPrefs{Hidden: ptr(true), Pinned: ptr(true), Muted: ptr(true)})
	f.setPrefs("alice", ab, store.ConvPrefs{Hidden: ptr(true)})
	f.wantPrefs("bob", ab, prefs{true, true, true})

	// A message from alice brings the conversation back for both; the other
	// prefs stay.
	f.commit(direct(dm("m2", 2, "alice", "bob", base+2)))
	f.wantPrefs("bob", ab, prefs{pinned: true, muted: true})
	f.wantPrefs("alice", ab, prefs{})

	// Hiding again, and a message in another conversation changes nothing.
	f.setPrefs("bob", ab, store.ConvPrefs{Hidden: ptr(true)})
	f.commit(firstDM(dm("m3", 1, "bob", "carol", base+3)))
	f.wantPrefs("bob", ab, prefs{pinned: true, muted: true, hidden: true})

	// Groups too.
	f.commit(createGroup("c1", "g1", "olga", base+4, "bob"))
	f.setPrefs("bob", "g:g1", store.ConvPrefs{Hidden: ptr(true)})
	f.commit(post(gm("g2", "g1", 2, "olga", base+5)))
	f.wantPrefs("bob", "g:g1", prefs{})
}

// PushStates: whether the conversation is muted for each user, and their
// unread total over the unmuted conversations they are active in.
func testPushStates(t *testing.T, f *fixture) {
	ab, g := directConv("alice", "bob"), "g:g1"
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)), direct(dm("m2", 2, "alice", "bob", base+2)))
	f.commit(firstDM(dm("m3", 1, "carol", "alice", base+3)))
	f.commit(createGroup("c1", "g1", "olga", base+4, "bob", "carol"))
	f.commit(post(gm("g2", "g1", 2, "olga", base+5)), post(gm("g3", "g1", 3, "olga", base+6)))
	f.setPrefs("carol", g, store.ConvPrefs{Muted: ptr(true)})

	check := func(what, conv string, users []string, want map[string]store.PushState) {
		t.Helper()
		got, err := f.st.PushStates(f.ctx, conv, users)
		if err != nil {
			t.Fatalf("%s: PushStates(%s): %v", what, conv, err)
		}
		for _, u := range users {
			if got[u] != want[u] {
				t.Errorf("%s: PushStates(%s)[%s] = %+v, want %+v", what, conv, u, got[u], want[u])
			}
		}
	}
	users := []string{"alice", "bob", "carol", "olga", "nobody"}
	check("group", g, users, map[string]store.PushState{
		"alice": {Unread: 1},              // not in g1; carol's message
		"bob":   {Unread: 4},              // 2 in d:alice:bob, 2 in g1
		"carol": {Muted: true, Unread: 0}, // g1 muted: not counted
	})
	f.setPrefs("bob", ab, store.ConvPrefs{Muted: ptr(true)})
	check("direct, muted by bob", ab, users, map[string]store.PushState{
		"alice": {Unread: 1},
		"bob":   {Muted: true, Unread: 2},
	})
	// Reading lowers the total; a conversation the user left counts no more.
	if _, _, err := f.st.MarkRead(f.ctx, "alice", directConv("alice", "carol"), 1); err != nil {
		t.Fatal(err)
	}
	f.commit(leaves(sys("c4", "g1", 4, "left", base+7), "bob"))
	f.commit(post(gm("g5", "g1", 5, "olga", base+8)))
	check("after a read and a leave", g, users, map[string]store.PushState{
		"carol": {Muted: true},
	})
	// More users than one statement may bind.
	many := []string{"carol"}
	for i := range 9000 {
		many = append(many, fmt.Sprintf("ghost%04d", i))
	}
	f.setPrefs("bob", ab, store.ConvPrefs{Muted: ptr(false)})
	check("9002 users", g, append(many, "bob"), map[string]store.PushState{
		"carol": {Muted: true},
		"bob":   {Unread: 2},
	})
}

// A member's own changes of their view (a read that moved, a pin, mute or
// hide that changed something) move their updated time, so an updated_after
// sync of another device sees them; changes that change nothing do not.
func testOwnChangesMoveUpdatedAt(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	f.commit(direct(dm("m2", 2, "alice", "bob", base+2)))
	since := func(after int64) []string {
		return convIDs(f.conversations("bob", store.ConvQuery{UpdatedAfter: after, Limit: 10}))
	}
	if got := since(base + 2); len(got) != 0 {
		t.Fatalf("updated after the last message, before any change: %v", got)
	}
	if _, moved, err := f.st.MarkRead(f.ctx, "bob", ab, 1); err != nil || !moved {
		t.Fatalf("MarkRead(1) = (%v, %v)", moved, err)
	}
	read := f.conv("bob", ab).UpdatedAt
	if read <= base+2 || !slices.Equal(since(base+2), []string{ab}) {
		t.Fatalf("after a read: updated_at %d, synced %v; want later than %d and listed", read, since(base+2), base+2)
	}
	if _, moved, _ := f.st.MarkRead(f.ctx, "bob", ab, 1); moved || f.conv("bob", ab).UpdatedAt != read {
		t.Fatal("a read that changed nothing moved updated_at")
	}
	if changed, err := f.st.SetConvPrefs(f.ctx, "bob", ab, store.ConvPrefs{Pinned: ptr(false), Muted: ptr(false)}); err != nil || changed {
		t.Fatalf("SetConvPrefs to the current flags = (%v, %v), want (false, nil)", changed, err)
	}
	if got := f.conv("bob", ab).UpdatedAt; got != read {
		t.Fatalf("prefs that changed nothing moved updated_at: %d, was %d", got, read)
	}
	for _, p := range []store.ConvPrefs{{Pinned: ptr(true)}, {Muted: ptr(true)}, {Hidden: ptr(true)}} {
		before := f.conv("bob", ab).UpdatedAt
		if changed, err := f.st.SetConvPrefs(f.ctx, "bob", ab, p); err != nil || !changed {
			t.Fatalf("SetConvPrefs(%+v) = (%v, %v), want (true, nil)", p, changed, err)
		}
		if got := since(before - 1); !slices.Equal(got, []string{ab}) || f.conv("bob", ab).UpdatedAt < before {
			t.Fatalf("after %+v: synced %v", p, got)
		}
	}
	// alice's view did not change: her updated time is still her last message.
	if got := f.conv("alice", ab).UpdatedAt; got != base+2 {
		t.Fatalf("alice's updated_at = %d, want %d", got, base+2)
	}
}

// Contacts are the users one shares a conversation with, both active in it.
func testContacts(t *testing.T, f *fixture) {
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	f.commit(createGroup("c1", "g1", "olga", base+2, "alice", "carol", "dave"))
	f.commit(leaves(sys("c2", "g1", 2, "left", base+3), "dave"))
	got, err := f.st.Contacts(f.ctx, "alice", []string{"bob", "carol", "dave", "olga", "zed"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"bob": true, "carol": true, "olga": true}
	if !maps.Equal(got, want) {
		t.Fatalf("Contacts(alice) = %v, want %v (dave left, zed shares nothing)", got, want)
	}
	if got, err := f.st.Contacts(f.ctx, "dave", []string{"alice", "olga"}); err != nil || len(got) != 0 {
		t.Fatalf("Contacts(dave, who left) = %v, %v; want none", got, err)
	}
}
