// Package storetest is the behavioural contract of store.Store: one suite,
// run unchanged against every implementation (store/sqlite, store/mysql).
//
// Each subtest opens its own fresh, migrated store, so subtests are
// independent and run in parallel. Nothing here sleeps: every check reads the
// store back after the call under test has returned.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/mqim/mqim/store"
)

// Run runs the whole contract suite. open must return a fresh, migrated
// store that is closed when t ends (testutil.OpenStore does both). What
// only an implementation can check (its schema, its rows) is tested beside
// it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Store", storeTests},
		{"Users", userTests},
		{"Messages", messageTests},
		{"Commit", commitTests},
		{"Changes", changeTests},
		{"Search", searchTests},
		{"Groups", groupTests},
		{"Conversations", conversationTests},
		{"Devices", deviceTests},
		{"Social", socialTests},
		{"Sessions", sessionTests},
		{"Concurrency", concurrencyTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newFixture(t, open))
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// base is an arbitrary fixed time (Unix ms) the fixtures count from, so
// that timestamps, and the order they give, are deterministic.
const base int64 = 1_764_140_000_000

// fixture is a fresh store plus helpers that fail the test on error.
type fixture struct {
	t   *testing.T
	st  store.Store
	ctx context.Context
}

func newFixture(t *testing.T, open func(t *testing.T) store.Store) *fixture {
	t.Helper()
	st := open(t)
	if st == nil {
		t.Fatal("open returned a nil store")
	}
	return &fixture{t: t, st: st, ctx: t.Context()}
}

var storeTests = []test{
	{"Ping", testPing},
}

func testPing(t *testing.T, f *fixture) {
	if err := f.st.Ping(f.ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func (f *fixture) commit(batch ...store.Write) {
	f.t.Helper()
	if err := f.st.Commit(f.ctx, batch); err != nil {
		f.t.Fatalf("Commit: %v", err)
	}
}

func (f *fixture) conv(userID, conv string) *store.Conversation {
	f.t.Helper()
	c, err := f.st.Conversation(f.ctx, userID, conv)
	if err != nil {
		f.t.Fatalf("Conversation(%s, %s): %v", userID, conv, err)
	}
	return c
}

func (f *fixture) messages(conv string, q store.MsgQuery) []*store.Message {
	f.t.Helper()
	ms, err := f.st.Messages(f.ctx, conv, q)
	if err != nil {
		f.t.Fatalf("Messages(%s, %+v): %v", conv, q, err)
	}
	return ms
}

// history is the whole of a conversation, ascending.
func (f *fixture) history(conv string) []*store.Message {
	f.t.Helper()
	return f.messages(conv, store.MsgQuery{Limit: 1000})
}

func (f *fixture) lastSeq(conv string) (int64, bool) {
	f.t.Helper()
	m, err := f.st.LastSeqs(f.ctx, []string{conv})
	if err != nil {
		f.t.Fatalf("LastSeqs: %v", err)
	}
	s, ok := m[conv]
	return s, ok
}

func (f *fixture) upsertUser(u *store.User) bool {
	f.t.Helper()
	created, err := f.st.UpsertUser(f.ctx, u)
	if err != nil {
		f.t.Fatalf("UpsertUser(%s): %v", u.ID, err)
	}
	return created
}

// wantState checks one user's view of a conversation: its last_seq, the
// user's read_seq (so unread = last-read) and min_seq, and that it is
// active.
func (f *fixture) wantState(userID, conv string, last, read, min int64) *store.Conversation {
	f.t.Helper()
	c := f.conv(userID, conv)
	if c.LastSeq != last || c.ReadSeq != read || c.MinSeq != min {
		f.t.Errorf("%s's view of %s: last_seq=%d read_seq=%d (unread %d) min_seq=%d, want last_seq=%d read_seq=%d (unread %d) min_seq=%d",
			userID, conv, c.LastSeq, c.ReadSeq, c.LastSeq-c.ReadSeq, c.MinSeq, last, read, last-read, min)
	}
	if !c.Active {
		f.t.Errorf("%s's view of %s: Active = false, want true", userID, conv)
	}
	return c
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v, want errors.Is(err, %v)", what, err, target)
	}
}

// directConv is the id of the 1:1 conversation of a and b.
func directConv(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return "d:" + a + ":" + b
}

// withCID sets m's client id.
func withCID(m *store.Message, cid string) *store.Message {
	m.CID = cid
	return m
}

// dm is a text message from one user to another, without a cid.
func dm(id string, seq int64, from, to string, ts int64) *store.Message {
	return &store.Message{
		ID: id, Conv: directConv(from, to), Seq: seq, From: from, To: to,
		Type: "text", Body: store.JSON(fmt.Sprintf(`{"text":%q}`, id)), TS: ts,
	}
}

// direct is the Write of a direct message: its sender has read it.
func direct(m *store.Message) store.Write {
	return store.Write{Msg: m, Kind: store.KindDirect, Reader: m.From}
}

// firstDM is the Write opening a 1:1 conversation: both users become
// participants.
func firstDM(m *store.Message) store.Write {
	w := direct(m)
	w.Participants = []string{m.From, m.To}
	return w
}

// gm is a message from a user to group gid.
func gm(id, gid string, seq int64, from string, ts int64) *store.Message {
	return &store.Message{
		ID: id, Conv: "g:" + gid, Seq: seq, From: from, To: gid,
		Type: "text", Body: store.JSON(fmt.Sprintf(`{"text":%q}`, id)), TS: ts,
	}
}

// post is the Write of a member's message to a group: its sender has read
// it.
func post(m *store.Message) store.Write {
	return store.Write{Msg: m, Kind: store.KindGroup, Reader: m.From}
}

// sys is a system message of group gid about event.
func sys(id, gid string, seq int64, event string, ts int64) *store.Message {
	return &store.Message{
		ID: id, Conv: "g:" + gid, Seq: seq, From: "$system", To: gid,
		Type: "system", Body: store.JSON(fmt.Sprintf(`{"event":%q}`, event)), TS: ts,
	}
}

// event is the Write of a group's system message m, which moves nobody's
// read position.
func event(m *store.Message) store.Write {
	return store.Write{Msg: m, Kind: store.KindGroup}
}

// joins is event(m) adding users to the group with the member role.
func joins(m *store.Message, users ...string) store.Write {
	w := event(m)
	for _, u := range users {
		w.AddMembers = append(w.AddMembers, store.Member{UserID: u, Role: store.RoleMember})
	}
	return w
}

// leaves is event(m) removing users from the group.
func leaves(m *store.Message, users ...string) store.Write {
	w := event(m)
	w.RemoveMembers = users
	return w
}

// createGroup is the Write creating group gid with its "created" message at
// seq 1 (from $system, so without a reader): the owner first, then members
// with the member role.
func createGroup(msgID, gid, owner string, ts int64, members ...string) store.Write {
	w := joins(sys(msgID, gid, 1, "created", ts), members...)
	w.AddMembers = append([]store.Member{{UserID: owner, Role: store.RoleOwner}}, w.AddMembers...)
	w.NewGroup = &store.Group{
		ID: gid, Name: "group " + gid, Owner: owner, JoinPolicy: "invite",
		CreatedAt: ts, UpdatedAt: ts,
	}
	return w
}

// jsonEqual compares two JSON documents by value; absent (nil or empty)
// equals only absent.
func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == 0 && len(b) == 0
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func showJSON(raw []byte) string {
	if raw == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", string(raw))
}

// diffMessage describes how got differs from want ("" when equal). JSON
// fields compare by value, everything else exactly (Mentions nil vs empty
// included: the contract says nil when there are none).
func diffMessage(got, want *store.Message) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	if !jsonEqual(got.Body, want.Body) {
		d = append(d, fmt.Sprintf("Body %s, want %s", showJSON(got.Body), showJSON(want.Body)))
	}
	if !jsonEqual(got.Ext, want.Ext) {
		d = append(d, fmt.Sprintf("Ext %s, want %s", showJSON(got.Ext), showJSON(want.Ext)))
	}
	g, w := *got, *want
	g.Body, w.Body, g.Ext, w.Ext = nil, nil, nil, nil
	if !reflect.DeepEqual(g, w) {
		d = append(d, fmt.Sprintf("fields %+v, want %+v", g, w))
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprintf("message %s: %v", want.ID, d)
}

func wantMessage(t *testing.T, what string, got, want *store.Message) {
	t.Helper()
	if d := diffMessage(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

func wantMessages(t *testing.T, what string, got []*store.Message, want ...*store.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d messages %v, want %d %v", what, len(got), ids(got), len(want), ids(want))
		return
	}
	for i := range got {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Errorf("%s[%d]: %s", what, i, d)
		}
	}
}

func ids(ms []*store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%s(seq %d)", m.ID, m.Seq)
	}
	return out
}

func convIDs(cs []store.Conversation) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func sorted(xs []string) []string {
	ys := slices.Clone(xs)
	slices.Sort(ys)
	return ys
}

func ptr[T any](v T) *T { return &v }
