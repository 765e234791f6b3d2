package storetest

import (
	"fmt"
	"testing"

	"github.com/mqim/mqim/store"
)

var messageTests = []test{
	{"DirectRoundTripAndPaging", testDirectMessages},
	{"SenderReadsOwnMessages", testSenderRead},
	{"ParticipantsStartAtTheirMessage", testParticipants},
	{"MessagesByCID", testMessagesByCID},
	{"LastSeqs", testLastSeqs},
}

func testDirectMessages(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	m1 := &store.Message{ID: "01JDZ8Q4T6W2N0ZV9B7C3X5K1M", Conv: ab, Seq: 1, From: "alice", To: "bob", CID: "c-1",
		Type: "text", Body: store.JSON(`{"text":"hi"}`), TS: base + 1}
	m2 := &store.Message{ID: "m2", Conv: ab, Seq: 2, From: "alice", To: "bob",
		Type: "image", Body: store.JSON(`{"url":"https://x/y.png","w":640,"h":480,"meta":{"alt":null}}`),
		Ext: store.JSON(`{"k":"v","n":[1,2.5,true]}`), TS: base + 2}
	// Same cid as m1 but another sender: no clash.
	m3 := &store.Message{ID: "m3", Conv: ac, Seq: 1, From: "carol", To: "alice", CID: "c-1",
		Type: "text", Body: store.JSON(`{"text":"hello from carol"}`), TS: base + 3}
	f.commit(firstDM(m1), direct(m2), firstDM(m3))

	m4 := &store.Message{ID: "m4", Conv: ab, Seq: 3, From: "bob", To: "alice", CID: "b-1",
		Type: "text", Body: store.JSON(`{"text":"@alice héllo 😀 \"quoted\" \\ \u2028"}`),
		ReplyTo: m1.ID, Mentions: []string{"alice", "carol"}, Ext: store.JSON(`{}`),
		TS: base + 4, EditedAt: base + 40}
	m5 := &store.Message{ID: "m5", Conv: ab, Seq: 4, From: "alice", To: "bob",
		Type: "custom", Body: store.JSON(`[1,"two",{"three":3}]`), Mentions: []string{"bob"},
		TS: base + 5, Recalled: true}
	f.commit(direct(m4), direct(m5))

	wantMessages(t, "all of d:alice:bob", f.history(ab), m1, m2, m4, m5)
	wantMessages(t, "d:alice:carol", f.history(ac), m3)

	// Paging: After < seq < Before (Before 0: unbounded), ascending unless
	// Desc, at most Limit rows.
	type Q = store.MsgQuery
	pages := []struct {
		q    Q
		want []*store.Message
	}{
		{Q{Limit: 2}, []*store.Message{m1, m2}},
		{Q{After: 2, Limit: 2}, []*store.Message{m4, m5}},
		{Q{After: 3, Limit: 100}, []*store.Message{m5}},
		{Q{After: 4, Limit: 100}, nil},
		{Q{Before: 4, Limit: 100}, []*store.Message{m1, m2, m4}},
		{Q{Before: 4, Limit: 2}, []*store.Message{m1, m2}},
		{Q{After: 1, Before: 4, Limit: 100}, []*store.Message{m2, m4}},
		{Q{After: 1, Before: 2, Limit: 100}, nil},
		{Q{Desc: true, Limit: 100}, []*store.Message{m5, m4, m2, m1}},
		{Q{Before: 4, Desc: true, Limit: 100}, []*store.Message{m4, m2, m1}},
		{Q{Before: 5, Desc: true, Limit: 2}, []*store.Message{m5, m4}},
		{Q{Before: 1, Desc: true, Limit: 100}, nil},
		{Q{After: 1, Desc: true, Limit: 2}, []*store.Message{m5, m4}},
		{Q{After: 1, Before: 4, Desc: true, Limit: 100}, []*store.Message{m4, m2}},
	}
	for _, p := range pages {
		wantMessages(t, fmt.Sprintf("Messages(%s, %+v)", ab, p.q), f.messages(ab, p.q), p.want...)
	}
	wantMessages(t, "unknown conversation", f.history("d:x:y"))

	// Conversation state: alice sent seq 4, bob sent seq 3.
	c := f.wantState("alice", ab, 4, 4, 0)
	if c.ID != ab || c.Kind != store.KindDirect || c.UpdatedAt != m5.TS || c.Pinned || c.Muted || c.Hidden {
		t.Errorf("alice's view of %s = %+v", ab, c)
	}
	wantMessage(t, "LastMessage", c.LastMessage, m5)
	c = f.wantState("bob", ab, 4, 3, 0)
	wantMessage(t, "bob's LastMessage", c.LastMessage, m5)
	// carol wrote to alice, who has not read it.
	f.wantState("alice", ac, 1, 0, 0)
	f.wantState("carol", ac, 1, 1, 0)
	_, err := f.st.Conversation(f.ctx, "carol", ab)
	wantErr(t, "Conversation(carol, d:alice:bob)", err, store.ErrNotFound)
	_, err = f.st.Conversation(f.ctx, "alice", "d:x:y")
	wantErr(t, "Conversation of an unknown conversation", err, store.ErrNotFound)
}

// With the sender as the Reader of its messages (as chat writes them), the
// sender's read_seq moves to each message it sends, the peer's does not move
// at all: unread = last_seq - read_seq is exact on both sides.
func testSenderRead(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)), direct(dm("m2", 2, "alice", "bob", base+2)))
	f.wantState("alice", ab, 2, 2, 0)
	f.wantState("bob", ab, 2, 0, 0)

	f.commit(direct(dm("m3", 3, "alice", "bob", base+3)))
	f.wantState("bob", ab, 3, 0, 0)

	f.commit(direct(dm("m4", 4, "bob", "alice", base+4)), direct(dm("m5", 5, "alice", "bob", base+5)),
		direct(dm("m6", 6, "alice", "bob", base+6)))
	f.wantState("alice", ab, 6, 6, 0)
	f.wantState("bob", ab, 6, 4, 0)

	// A batch whose messages from bob are not the last ones.
	f.commit(direct(dm("m7", 7, "bob", "alice", base+7)), direct(dm("m8", 8, "bob", "alice", base+8)),
		direct(dm("m9", 9, "alice", "bob", base+9)))
	f.wantState("alice", ab, 9, 9, 0)
	f.wantState("bob", ab, 9, 8, 0)
}

// Participants become members, if not already, with read_seq and min_seq at
// Msg.Seq-1 in a direct conversation and read_seq at Msg.Seq in a group.
func testParticipants(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	// A direct conversation whose first stored message is seq 1: both start
	// from the beginning.
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)))
	f.wantState("bob", ab, 1, 0, 0)
	// Participants again on a later message change nothing for members.
	f.commit(store.Write{Msg: dm("m2", 2, "alice", "bob", base+2), Kind: store.KindDirect, Reader: "alice", Participants: []string{"alice", "bob"}})
	f.wantState("alice", ab, 2, 2, 0)
	f.wantState("bob", ab, 2, 0, 0)

	// A direct conversation whose members appear at seq 5 (say, its earlier
	// history was imported): they see from seq 5 on, and have not read it.
	cd := directConv("carol", "dave")
	f.commit(store.Write{Msg: dm("n1", 5, "carol", "dave", base+3), Kind: store.KindDirect, Reader: "carol", Participants: []string{"carol", "dave"}})
	f.wantState("dave", cd, 5, 4, 4)
	f.wantState("carol", cd, 5, 5, 4)

	// A group write naming a new member as participant: joins at the message.
	f.commit(createGroup("g1", "g1", "alice", base+4))
	f.commit(store.Write{Msg: sys("g2", "g1", 2, "joined", base+5), Kind: store.KindGroup, Participants: []string{"erin"}})
	// Nothing unread, no history before the join (whether the join event
	// itself is visible is AddMembers' business: min_seq Seq-1 or Seq).
	if c := f.conv("erin", "g:g1"); c.LastSeq != 2 || c.ReadSeq != 2 || c.MinSeq < 1 || c.MinSeq > 2 || !c.Active {
		t.Errorf("erin's view of g:g1 = %+v, want last_seq 2, read_seq 2, min_seq 1 or 2", c)
	}
	f.wantState("alice", "g:g1", 2, 1, 0)
}

func testMessagesByCID(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	m1 := &store.Message{ID: "m1", Conv: ab, Seq: 1, From: "alice", To: "bob", CID: "c-1", Type: "text",
		Body: store.JSON(`{"text":"1"}`), Mentions: []string{"bob"}, TS: base + 1}
	m2 := &store.Message{ID: "m2", Conv: ab, Seq: 2, From: "bob", To: "alice", CID: "c-1", Type: "text",
		Body: store.JSON(`{"text":"2"}`), TS: base + 2}
	m3 := &store.Message{ID: "m3", Conv: ac, Seq: 1, From: "alice", To: "carol", CID: "c-2", Type: "text",
		Body: store.JSON(`{"text":"3"}`), Ext: store.JSON(`{"x":1}`), TS: base + 3}
	m4 := dm("m4", 3, "alice", "bob", base+4) // no cid
	f.commit(firstDM(m1), direct(m2), firstDM(m3), direct(m4))

	got, err := f.st.MessagesByCID(f.ctx, [][2]string{
		{"alice", "c-1"}, {"bob", "c-1"}, {"alice", "c-2"}, {"carol", "c-1"}, {"alice", "c-9"}, {"alice", ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*store.Message{"alice\x00c-1": m1, "bob\x00c-1": m2, "alice\x00c-2": m3}
	if len(got) != len(want) {
		t.Errorf("MessagesByCID returned keys %q, want %q", keys(got), keys(want))
	}
	for k, w := range want {
		wantMessage(t, fmt.Sprintf("MessagesByCID[%q]", k), got[k], w)
	}

	got, err = f.st.MessagesByCID(f.ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("MessagesByCID(nil) = %v, %v; want empty", got, err)
	}
	// More pairs than one statement may bind.
	many := [][2]string{{"bob", "c-1"}}
	for i := range 5000 {
		many = append(many, [2]string{"alice", fmt.Sprintf("ghost-%d", i)})
	}
	many = append(many, [2]string{"alice", "c-2"})
	got, err = f.st.MessagesByCID(f.ctx, many)
	if err != nil {
		t.Fatalf("MessagesByCID(%d keys): %v", len(many), err)
	}
	if len(got) != 2 || got["bob\x00c-1"] == nil || got["alice\x00c-2"] == nil {
		t.Errorf("MessagesByCID(%d keys) returned keys %q, want bob/c-1 and alice/c-2", len(many), keys(got))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}

func testLastSeqs(t *testing.T, f *fixture) {
	ab, ac := directConv("alice", "bob"), directConv("alice", "carol")
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base)), direct(dm("m2", 2, "bob", "alice", base)),
		firstDM(dm("m3", 1, "carol", "alice", base)))
	f.commit(createGroup("g1", "g1", "alice", base+1, "bob"), post(gm("g2", "g1", 2, "bob", base+2)),
		post(gm("g3", "g1", 3, "alice", base+2)))
	got, err := f.st.LastSeqs(f.ctx, []string{ab, ac, "g:g1", "d:x:y", "g:none"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{ab: 2, ac: 1, "g:g1": 3}
	if len(got) != len(want) {
		t.Errorf("LastSeqs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("LastSeqs[%s] = %d, want %d", k, got[k], v)
		}
	}
	got, err = f.st.LastSeqs(f.ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("LastSeqs(nil) = %v, %v; want empty", got, err)
	}
	many := []string{ab}
	for i := range 9000 {
		many = append(many, fmt.Sprintf("d:ghost:%d", i))
	}
	got, err = f.st.LastSeqs(f.ctx, append(many, "g:g1"))
	if err != nil {
		t.Fatalf("LastSeqs(%d ids): %v", len(many)+1, err)
	}
	if len(got) != 2 || got[ab] != 2 || got["g:g1"] != 3 {
		t.Errorf("LastSeqs(%d ids) = %v, want %s:2 g:g1:3", len(many)+1, got, ab)
	}
}
