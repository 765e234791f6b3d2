package storetest

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mqim/mqim/store"
)

var groupTests = []test{
	{"Create", testGroupCreate},
	{"CreatedByOwner", testGroupCreatedByOwner},
	{"JoinLater", testGroupJoin},
	{"LeaveKeepsReadAtLeave", testGroupLeave},
	{"LeaveThenRejoin", testGroupRejoin},
	{"NotFound", testGroupNotFound},
	{"UpdateSettings", testGroupUpdate},
	{"TransferOwner", testGroupTransfer},
	{"Dissolve", testGroupDissolve},
	{"JoinRequests", testJoinRequests},
	{"JoinRequestsEndOnJoinAndDissolve", testJoinRequestsEnd},
	{"GroupCounts", testGroupCounts},
}

func memberIDs(ms []store.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

func (f *fixture) members(gid string) []store.Member {
	f.t.Helper()
	ms, err := f.st.Members(f.ctx, gid)
	if err != nil {
		f.t.Fatalf("Members(%s): %v", gid, err)
	}
	return ms
}

// member is uid's membership of gid, as Members lists it.
func (f *fixture) member(gid, uid string) store.Member {
	f.t.Helper()
	ms := f.members(gid)
	for _, m := range ms {
		if m.UserID == uid {
			return m
		}
	}
	f.t.Fatalf("%s is not among the members of %s: %v", uid, gid, memberIDs(ms))
	return store.Member{}
}

func (f *fixture) isMember(gid, uid string) bool {
	f.t.Helper()
	return slices.Contains(memberIDs(f.members(gid)), uid)
}

func (f *fixture) userGroups(uid string) []string {
	f.t.Helper()
	gs, err := f.st.UserGroups(f.ctx, uid)
	if err != nil {
		f.t.Fatalf("UserGroups(%s): %v", uid, err)
	}
	return sorted(gs)
}

func testGroupCreate(t *testing.T, f *fixture) {
	g := &store.Group{
		ID: "g1", Name: "Team ✨", Avatar: "https://img/g.png", Notice: "be nice", Owner: "olga",
		JoinPolicy: "approval", MuteAll: true, Ext: store.JSON(`{"topic":"go","n":[1]}`),
		CreatedAt: base + 1, UpdatedAt: base + 2,
	}
	created := sys("c1", "g1", 1, "created", base+1)
	// Insertion order deliberately not owner first.
	f.commit(store.Write{Msg: created, Kind: store.KindGroup, NewGroup: g, AddMembers: []store.Member{
		{UserID: "bob", Role: store.RoleMember},
		{UserID: "olga", Role: store.RoleOwner},
		{UserID: "carol", Role: store.RoleAdmin, MutedUntil: base + 99},
	}})

	got, err := f.st.Group(f.ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(got.Ext, g.Ext) {
		t.Errorf("Group Ext = %s, want %s", showJSON(got.Ext), showJSON(g.Ext))
	}
	gg, wg := *got, *g
	gg.Ext, wg.Ext = nil, nil
	if !reflect.DeepEqual(gg, wg) {
		t.Errorf("Group = %+v, want %+v", gg, wg)
	}

	ms := f.members("g1")
	if len(ms) != 3 || ms[0].UserID != "olga" {
		t.Fatalf("Members = %v, want olga (owner) first, then bob and carol", memberIDs(ms))
	}
	roles := map[string]string{"olga": store.RoleOwner, "bob": store.RoleMember, "carol": store.RoleAdmin}
	for _, m := range ms {
		want := store.Member{GroupID: "g1", UserID: m.UserID, Role: roles[m.UserID], JoinSeq: 1, JoinedAt: base + 1}
		if m.UserID == "carol" {
			want.MutedUntil = base + 99
		}
		if m != want {
			t.Errorf("member %+v, want %+v", m, want)
		}
		// Members present at creation have read the "created" message.
		c := f.wantState(m.UserID, "g:g1", 1, 1, 0)
		if c.Kind != store.KindGroup || c.UpdatedAt != base+1 {
			t.Errorf("%s's view of g:g1 = %+v", m.UserID, c)
		}
		wantMessage(t, "LastMessage of a new group", c.LastMessage, created)
		if gs := f.userGroups(m.UserID); !slices.Equal(gs, []string{"g1"}) {
			t.Errorf("UserGroups(%s) = %v, want [g1]", m.UserID, gs)
		}
	}
	wantMessages(t, "history of g:g1", f.history("g:g1"), created)

	// Messages from members: senders read them, the others have unread.
	f.commit(post(gm("m2", "g1", 2, "bob", base+3)), post(gm("m3", "g1", 3, "bob", base+4)))
	f.wantState("bob", "g:g1", 3, 3, 0)
	f.wantState("olga", "g:g1", 3, 1, 0)
	f.wantState("carol", "g:g1", 3, 1, 0)

	// A second group: UserGroups lists both.
	f.commit(createGroup("d1", "g0", "carol", base+5, "olga"))
	if gs := f.userGroups("olga"); !slices.Equal(gs, []string{"g0", "g1"}) {
		t.Errorf("UserGroups(olga) = %v, want [g0 g1]", gs)
	}
	if gs := f.userGroups("bob"); !slices.Equal(gs, []string{"g1"}) {
		t.Errorf("UserGroups(bob) = %v, want [g1]", gs)
	}
	if ms := f.members("g0"); !slices.Equal(memberIDs(ms), []string{"carol", "olga"}) {
		t.Errorf("Members(g0) = %v, want [carol olga]", memberIDs(ms))
	}
}

// The owner may be the sender, and reader, of the "created" message: the
// same state.
func testGroupCreatedByOwner(t *testing.T, f *fixture) {
	w := createGroup("c1", "g1", "olga", base+1, "bob")
	w.Msg.From, w.Reader = "olga", "olga"
	f.commit(w)
	f.wantState("olga", "g:g1", 1, 1, 0)
	f.wantState("bob", "g:g1", 1, 1, 0)
	if m := f.member("g1", "bob"); m.JoinSeq != 1 {
		t.Errorf("bob's JoinSeq = %d, want 1", m.JoinSeq)
	}
}

func testGroupJoin(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob", "carol"))
	f.commit(post(gm("m2", "g1", 2, "bob", base+2)), post(gm("m3", "g1", 3, "olga", base+3)))

	joined := sys("c4", "g1", 4, "joined", base+4)
	f.commit(joins(joined, "dave"))
	if m := f.member("g1", "dave"); m.JoinSeq != 4 || m.JoinedAt != base+4 || m.Role != store.RoleMember {
		t.Errorf("Member(g1, dave) = %+v, want JoinSeq 4, JoinedAt %d", m, base+4)
	}
	// dave starts at his join event: nothing unread, history from it on.
	c := f.wantState("dave", "g:g1", 4, 4, 3)
	wantMessage(t, "dave's LastMessage", c.LastMessage, joined)
	// The others now have the join event unread.
	f.wantState("carol", "g:g1", 4, 1, 0)
	f.wantState("olga", "g:g1", 4, 3, 0)

	f.commit(post(gm("m5", "g1", 5, "carol", base+5)))
	f.wantState("dave", "g:g1", 5, 4, 3)

	// Two joins in one batch, "aaron" sorting first by id but joining last.
	f.commit(
		joins(sys("c6", "g1", 6, "joined", base+6), "erin"),
		joins(sys("c7", "g1", 7, "joined", base+7), "aaron"),
	)
	f.wantState("erin", "g:g1", 7, 6, 5)
	f.wantState("aaron", "g:g1", 7, 7, 6)
	if m := f.member("g1", "aaron"); m.JoinSeq != 7 {
		t.Errorf("aaron's JoinSeq = %d, want 7", m.JoinSeq)
	}
	// Owner first, then by join time.
	ids := memberIDs(f.members("g1"))
	if len(ids) != 6 || ids[0] != "olga" || !slices.Equal(ids[3:], []string{"dave", "erin", "aaron"}) ||
		!slices.Equal(sorted(ids[1:3]), []string{"bob", "carol"}) {
		t.Errorf("Members = %v, want olga, {bob, carol}, dave, erin, aaron", ids)
	}
	if gs := f.userGroups("aaron"); !slices.Equal(gs, []string{"g1"}) {
		t.Errorf("UserGroups(aaron) = %v", gs)
	}
}

// A member who left keeps a row, as stored: the conversation's own last seq
// and message, and their read position at the leave event, which stays
// there whatever happens in the group later. (What of it they may see is
// chat's to decide.)
func testGroupLeave(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob", "carol"))
	f.commit(post(gm("m2", "g1", 2, "olga", base+2)), post(gm("m3", "g1", 3, "carol", base+3)))

	left := sys("c4", "g1", 4, "left", base+4)
	f.commit(leaves(left, "bob"))
	if f.isMember("g1", "bob") {
		t.Error("bob is still a member of g1 after leaving")
	}
	if gs := f.userGroups("bob"); len(gs) != 0 {
		t.Errorf("UserGroups(bob) after leaving = %v, want none", gs)
	}
	if ids := memberIDs(f.members("g1")); !slices.Equal(sorted(ids), []string{"carol", "olga"}) {
		t.Errorf("Members after bob left = %v", ids)
	}

	// last is the conversation's last message.
	// updated is bob's expected updated time: his leave, until he changes
	// his own view (a hide) after it.
	updated := base + 4
	wantLeft := func(when string, last *store.Message) {
		t.Helper()
		c := f.conv("bob", "g:g1")
		if c.Active || c.LastSeq != last.Seq || c.ReadSeq != 4 {
			t.Errorf("%s: bob's row = Active %v, last_seq %d, read_seq %d; want inactive, last_seq %d (the conversation's), read_seq 4 (his leave)",
				when, c.Active, c.LastSeq, c.ReadSeq, last.Seq)
		}
		wantMessage(t, when+": bob's LastMessage", c.LastMessage, last)
		cs, err := f.st.Conversations(f.ctx, "bob", store.ConvQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].ID != "g:g1" || cs[0].Active || cs[0].LastSeq != last.Seq || cs[0].ReadSeq != 4 {
			t.Errorf("%s: Conversations(bob) = %+v, want g:g1 inactive, last_seq %d, read_seq 4", when, cs, last.Seq)
		}
		if len(cs) == 1 {
			wantMessage(t, when+": LastMessage in Conversations(bob)", cs[0].LastMessage, last)
		}
		// For bob the conversation last changed when he left (or changed his
		// own view since): later messages do not bring it back into his
		// updated_after syncs.
		if len(cs) == 1 && cs[0].UpdatedAt != updated {
			t.Errorf("%s: bob's updated_at = %d, want %d", when, cs[0].UpdatedAt, updated)
		}
		if cs, err := f.st.Conversations(f.ctx, "bob", store.ConvQuery{UpdatedAfter: updated, Limit: 10}); err != nil || len(cs) != 0 {
			t.Errorf("%s: Conversations(bob, updated after his leave) = %+v, %v; want none", when, cs, err)
		}
	}
	wantLeft("right after leaving", left)

	m6 := gm("m6", "g1", 6, "carol", base+6)
	f.commit(post(gm("m5", "g1", 5, "olga", base+5)), post(m6))
	f.wantLastSeq("g:g1", 6)
	wantLeft("after more messages", m6)
	f.wantState("olga", "g:g1", 6, 5, 0)
	f.wantState("carol", "g:g1", 6, 6, 0)

	// Marking read cannot move the position past the leave event either.
	if r, _, err := f.st.MarkRead(f.ctx, "bob", "g:g1", 6); err != nil || r != 4 {
		t.Errorf("MarkRead(bob, g:g1, 6) after leaving = (%d, %v), want (4, nil)", r, err)
	}
	wantLeft("after MarkRead", m6)

	// A conversation bob hid after leaving stays hidden: new messages are
	// not his. The hide is a change of his view: it moves his updated time.
	if changed, err := f.st.SetConvPrefs(f.ctx, "bob", "g:g1", store.ConvPrefs{Hidden: ptr(true)}); err != nil || !changed {
		t.Fatalf("SetConvPrefs(hide) after leaving = (%v, %v), want (true, nil)", changed, err)
	}
	if c := f.conv("bob", "g:g1"); c.UpdatedAt <= base+4 {
		t.Errorf("bob's updated_at after hiding = %d, want later than his leave %d", c.UpdatedAt, base+4)
	} else {
		updated = c.UpdatedAt
	}
	m7 := gm("m7", "g1", 7, "olga", base+7)
	f.commit(post(m7))
	if c := f.conv("bob", "g:g1"); !c.Hidden {
		t.Error("a new message unhid the conversation of a member who left")
	}
	wantLeft("after hiding", m7)

	// A kick by the owner, its reader: the owner's read_seq follows, the
	// kicked one's stays at the kick.
	kick := sys("c8", "g1", 8, "kicked", base+8)
	kick.From = "olga"
	f.commit(store.Write{Msg: kick, Kind: store.KindGroup, Reader: "olga", RemoveMembers: []string{"carol"}})
	c := f.conv("carol", "g:g1")
	if c.Active || c.LastSeq != 8 || c.ReadSeq != 8 {
		t.Errorf("carol's row after kick = %+v, want inactive at 8", c)
	}
	f.wantState("olga", "g:g1", 8, 8, 0)
	if ids := memberIDs(f.members("g1")); !slices.Equal(ids, []string{"olga"}) {
		t.Errorf("Members after the kick = %v, want [olga]", ids)
	}
}

func testGroupRejoin(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob"))
	f.commit(leaves(sys("c2", "g1", 2, "left", base+2), "bob"))
	if _, err := f.st.SetConvPrefs(f.ctx, "bob", "g:g1", store.ConvPrefs{Hidden: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	f.commit(post(gm("m3", "g1", 3, "olga", base+3)), post(gm("m4", "g1", 4, "olga", base+4)))

	f.commit(joins(sys("c5", "g1", 5, "joined", base+5), "bob"))
	if m := f.member("g1", "bob"); m.JoinSeq != 5 || m.JoinedAt != base+5 {
		t.Errorf("Member(g1, bob) after rejoining = %+v, want JoinSeq 5", m)
	}
	c := f.wantState("bob", "g:g1", 5, 5, 4)
	if c.Hidden {
		t.Error("rejoined conversation is still hidden")
	}
	f.commit(post(gm("m6", "g1", 6, "olga", base+6)))
	f.wantState("bob", "g:g1", 6, 5, 4)
	if gs := f.userGroups("bob"); !slices.Equal(gs, []string{"g1"}) {
		t.Errorf("UserGroups(bob) after rejoining = %v", gs)
	}
}

func testGroupNotFound(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob"))
	_, err := f.st.Group(f.ctx, "nope")
	wantErr(t, "Group(nope)", err, store.ErrNotFound)
	if f.isMember("g1", "dave") {
		t.Error("dave, who never joined, is a member of g1")
	}
	if ms, err := f.st.Members(f.ctx, "nope"); err != nil || len(ms) != 0 {
		t.Errorf("Members(nope) = %v, %v; want none", memberIDs(ms), err)
	}
	if gs, err := f.st.UserGroups(f.ctx, "dave"); err != nil || len(gs) != 0 {
		t.Errorf("UserGroups(dave) = %v, %v; want none", gs, err)
	}
}
