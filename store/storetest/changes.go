package storetest

import (
	"testing"

	"github.com/mqim/mqim/store"
)

// Recalls and edits (store.Write.Recall, store.Write.Edit): the message is
// changed in place in the commit of its record.
var changeTests = []test{
	{"RecallInPlace", testRecallInPlace},
	{"EditInPlace", testEditInPlace},
	{"ChangeOfRecalledConflicts", testChangeOfRecalledConflicts},
	{"ChangesInOneBatch", testChangesInOneBatch},
	{"RecordIsNotLastMessage", testRecordIsNotLastMessage},
	{"MessagesByID", testMessagesByID},
}

// recallOf is the recall record (seq, from) of message target of m's
// conversation.
func recallOf(id string, seq int64, from string, target *store.Message, ts int64) store.Write {
	m := &store.Message{ID: id, Conv: target.Conv, Seq: seq, From: from, To: target.To, Type: "recall",
		Body: store.JSON(`{"id":"` + target.ID + `"}`), TS: ts}
	return store.Write{Msg: m, Kind: kindOf(target), Reader: from, Recall: target.ID}
}

// editOf is the edit record giving target the text.
func editOf(id string, seq int64, target *store.Message, text string, ts int64) store.Write {
	body := store.JSON(`{"text":"` + text + `"}`)
	m := &store.Message{ID: id, Conv: target.Conv, Seq: seq, From: target.From, To: target.To, Type: "edit",
		Body: store.JSON(`{"body":` + string(body) + `,"id":"` + target.ID + `"}`), TS: ts}
	return store.Write{Msg: m, Kind: kindOf(target), Reader: target.From, Edit: &store.Edit{ID: target.ID, Body: body}}
}

func kindOf(m *store.Message) string {
	if m.Conv[0] == 'g' {
		return store.KindGroup
	}
	return store.KindDirect
}

// stored reads one message back by id.
func (f *fixture) stored(id string) *store.Message {
	f.t.Helper()
	got, err := f.st.MessagesByID(f.ctx, []string{id})
	if err != nil {
		f.t.Fatal(err)
	}
	if got[id] == nil {
		f.t.Fatalf("message %s not found", id)
	}
	return got[id]
}

func testRecallInPlace(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	m1 := dm("m1", 1, "alice", "bob", base+1)
	m1.Ext = store.JSON(`{"secret":1}`)
	f.commit(firstDM(m1))
	f.commit(recallOf("r1", 2, "alice", m1, base+2))
	got := f.stored("m1")
	if !got.Recalled || string(got.Body) != "null" || got.Ext != nil {
		t.Errorf("recalled message: recalled %v, body %s, ext %s; want recalled, body null, no ext", got.Recalled, got.Body, got.Ext)
	}
	h := f.history(ab)
	if len(h) != 2 || h[1].ID != "r1" || h[1].Type != "recall" || h[1].Seq != 2 || h[1].From != "alice" {
		t.Fatalf("history = %+v, want m1 then the recall record r1 at seq 2", h)
	}
	// The record is unread for bob, read by alice (the actor).
	f.wantState("alice", ab, 2, 2, 0)
	f.wantState("bob", ab, 2, 0, 0)
}

func testEditInPlace(t *testing.T, f *fixture) {
	g := "g:g1"
	f.commit(createGroup("c1", "g1", "olga", base, "carol"))
	m2 := gm("m2", "g1", 2, "carol", base+1)
	f.commit(post(m2))
	f.commit(editOf("e3", 3, m2, "fixed", base+5))
	got := f.stored("m2")
	if string(got.Body) != `{"text":"fixed"}` || got.EditedAt != base+5 || got.Recalled {
		t.Errorf("edited message: body %s, edited_at %d, recalled %v; want the new text, edited_at %d", got.Body, got.EditedAt, got.Recalled, base+5)
	}
	f.wantState("carol", g, 3, 3, 0)
	f.wantState("olga", g, 3, 1, 0)
	// An edit to the same text and time changes no column (MySQL then
	// counts no row): still no conflict.
	f.commit(editOf("e4", 4, m2, "fixed", base+5))
}

// A recall or an edit of a message recalled meanwhile (by another writer)
// is ErrConflict, and the whole batch rolls back; so is one naming a
// message of another conversation.
func testChangeOfRecalledConflicts(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	m1 := dm("m1", 1, "alice", "bob", base+1)
	f.commit(firstDM(m1))
	f.commit(recallOf("r2", 2, "alice", m1, base+2))
	other := direct(dm("m3", 3, "alice", "bob", base+3))
	f.conflictingBatch("second recall", other, recallOf("r4", 4, "alice", m1, base+4))
	f.conflictingBatch("edit of a recalled message", other, editOf("e4", 4, m1, "x", base+4))
	f.wantAbsent(other.Msg)
	f.wantLastSeq(ab, 2)

	cd := dm("n1", 1, "carol", "dave", base+5)
	f.commit(firstDM(cd))
	wrong := recallOf("r5", 3, "alice", cd, base+6)
	wrong.Msg.Conv, wrong.Msg.To = ab, "bob" // a record in d:alice:bob naming a message of d:carol:dave
	f.conflictingBatch("recall of a message of another conversation", wrong)
	if f.stored("n1").Recalled {
		t.Error("a record of another conversation recalled the message")
	}
}

// In one batch the changes apply in seq order: an edit, then a recall.
func testChangesInOneBatch(t *testing.T, f *fixture) {
	m1 := dm("m1", 1, "alice", "bob", base+1)
	f.commit(firstDM(m1))
	f.commit(editOf("e2", 2, m1, "v2", base+2), recallOf("r3", 3, "alice", m1, base+3))
	if got := f.stored("m1"); !got.Recalled || string(got.Body) != "null" || got.EditedAt != base+2 {
		t.Errorf("after edit then recall: recalled %v, body %s, edited_at %d", got.Recalled, got.Body, got.EditedAt)
	}
}

// A record moves last_seq and the updated time, never last_message: that
// stays the last content message, as changed in place.
func testRecordIsNotLastMessage(t *testing.T, f *fixture) {
	ab := directConv("alice", "bob")
	m1 := dm("m1", 1, "alice", "bob", base+1)
	m2 := dm("m2", 2, "bob", "alice", base+2)
	f.commit(firstDM(m1), direct(m2))
	f.commit(editOf("e3", 3, m2, "better", base+3))
	c := f.wantState("alice", ab, 3, 1, 0)
	if c.LastMessage == nil || c.LastMessage.ID != "m2" || string(c.LastMessage.Body) != `{"text":"better"}` || c.LastMessage.EditedAt != base+3 {
		t.Fatalf("last message after an edit = %+v, want m2 edited", c.LastMessage)
	}
	if c.UpdatedAt != base+3 {
		t.Errorf("updated_at = %d, want the record's %d", c.UpdatedAt, base+3)
	}
	f.commit(recallOf("r4", 4, "alice", m1, base+4))
	if c := f.conv("bob", ab); c.LastSeq != 4 || c.LastMessage == nil || c.LastMessage.ID != "m2" {
		t.Errorf("after recalling an older message: last_seq %d, last message %+v; want 4 and m2", c.LastSeq, c.LastMessage)
	}
	// A content message and a record in one batch: the content message is
	// the last message, the record's seq the last seq.
	m5 := dm("m5", 5, "alice", "bob", base+5)
	f.commit(direct(m5), recallOf("r6", 6, "alice", m5, base+6))
	c = f.conv("bob", ab)
	if c.LastSeq != 6 || c.LastMessage == nil || c.LastMessage.ID != "m5" || !c.LastMessage.Recalled {
		t.Errorf("after a message and its recall in one batch: last_seq %d, last message %+v; want 6 and m5 recalled", c.LastSeq, c.LastMessage)
	}
	// The next message becomes the last one again.
	f.commit(direct(dm("m7", 7, "bob", "alice", base+7)))
	if c := f.conv("alice", ab); c.LastMessage == nil || c.LastMessage.ID != "m7" {
		t.Errorf("last message = %+v, want m7", c.LastMessage)
	}
}

func testMessagesByID(t *testing.T, f *fixture) {
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base+1)), direct(dm("m2", 2, "alice", "bob", base+2)))
	got, err := f.st.MessagesByID(f.ctx, []string{"m1", "m2", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["m1"].Seq != 1 || got["m2"].Seq != 2 {
		t.Errorf("MessagesByID = %v, want m1 and m2", keys(got))
	}
	if got, err := f.st.MessagesByID(f.ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("MessagesByID(nil) = %v, %v; want none", got, err)
	}
}
