package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/mqim/mqim/store"
)

func (f *fixture) group(gid string) *store.Group {
	f.t.Helper()
	g, err := f.st.Group(f.ctx, gid)
	if err != nil {
		f.t.Fatalf("Group(%s): %v", gid, err)
	}
	return g
}

// An UpdateGroup replaces the settings, with its message, in one commit;
// id, creation time and members stay.
func testGroupUpdate(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob"))
	before := f.group("g1")
	upd := *before
	upd.ID = "ignored"
	upd.Name, upd.Avatar, upd.Notice = "Renamed ✨", "https://img/new.png", "read the rules"
	upd.JoinPolicy, upd.MuteAll, upd.Ext, upd.UpdatedAt = "approval", true, store.JSON(`{"k":[1,2]}`), base+2
	updated := sys("c2", "g1", 2, "updated", base+2)
	f.commit(store.Write{Msg: updated, Kind: store.KindGroup, UpdateGroup: &upd})

	got := f.group("g1")
	want := upd
	want.ID, want.CreatedAt = "g1", before.CreatedAt
	if !jsonEqual(got.Ext, want.Ext) {
		t.Errorf("Ext = %s, want %s", showJSON(got.Ext), showJSON(want.Ext))
	}
	gg, wg := *got, want
	gg.Ext, wg.Ext = nil, nil
	if !reflect.DeepEqual(gg, wg) {
		t.Errorf("Group after update = %+v, want %+v", gg, wg)
	}
	wantMessages(t, "history", f.history("g:g1"), f.history("g:g1")[0], updated)
	if ids := memberIDs(f.members("g1")); !slices.Equal(ids, []string{"olga", "bob"}) {
		t.Errorf("Members after update = %v", ids)
	}
	// Clearing: empty strings, no ext, mute_all off.
	upd.Notice, upd.Ext, upd.MuteAll, upd.UpdatedAt = "", nil, false, base+3
	f.commit(store.Write{Msg: sys("c3", "g1", 3, "updated", base+3), Kind: store.KindGroup, UpdateGroup: &upd})
	if g := f.group("g1"); g.Notice != "" || len(g.Ext) != 0 || g.MuteAll || g.UpdatedAt != base+3 {
		t.Errorf("Group after clearing = %+v", g)
	}
	f.wantState("bob", "g:g1", 3, 1, 0)
}

// A transfer is an UpdateGroup of the owner with two UpdateMembers.
func testGroupTransfer(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob", "carol"))
	g := f.group("g1")
	g.Owner, g.UpdatedAt = "carol", base+2
	msg := sys("c2", "g1", 2, "transferred", base+2)
	f.commit(store.Write{Msg: msg, Kind: store.KindGroup, Reader: "olga", UpdateGroup: g, UpdateMembers: []store.Member{
		{UserID: "olga", Role: store.RoleAdmin}, {UserID: "carol", Role: store.RoleOwner},
	}})
	if g := f.group("g1"); g.Owner != "carol" {
		t.Errorf("owner = %s, want carol", g.Owner)
	}
	ms := f.members("g1")
	if ids := memberIDs(ms); !slices.Equal(ids, []string{"carol", "olga", "bob"}) {
		t.Errorf("Members after transfer = %v, want carol (owner), olga (admin), bob", ids)
	}
	if ms[1].Role != store.RoleAdmin || ms[0].Role != store.RoleOwner || ms[0].JoinSeq != 1 {
		t.Errorf("roles after transfer: %+v", ms)
	}
	f.wantState("olga", "g:g1", 2, 2, 0)
}

// Dissolving: the group is marked, every member becomes a former member
// at the dissolve message, requests go; history stays.
func testGroupDissolve(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob", "carol"))
	f.commit(leaves(sys("c2", "g1", 2, "left", base+2), "carol"))
	f.commit(post(gm("m3", "g1", 3, "bob", base+3)))
	if _, err := f.st.PutJoinRequest(f.ctx, &store.JoinRequest{GroupID: "g1", UserID: "dave", CreatedAt: base + 3}, 0); err != nil {
		t.Fatal(err)
	}
	// Another group of bob's stays as it is.
	f.commit(createGroup("d1", "g2", "bob", base+3, "olga"))

	dissolved := sys("c4", "g1", 4, "dissolved", base+4)
	dissolved.From = "olga"
	f.commit(store.Write{Msg: dissolved, Kind: store.KindGroup, DissolveGroup: true})

	g := f.group("g1")
	if !g.Dissolved || g.UpdatedAt != base+4 {
		t.Errorf("Group after dissolve = %+v, want dissolved, updated at %d", g, base+4)
	}
	if ms := f.members("g1"); len(ms) != 0 {
		t.Errorf("Members after dissolve = %v, want none", memberIDs(ms))
	}
	for _, u := range []string{"olga", "bob"} {
		c := f.conv(u, "g:g1")
		if c.Active || c.ReadSeq != 4 || c.LastSeq != 4 {
			t.Errorf("%s's row after dissolve = %+v, want inactive, read_seq 4", u, c)
		}
		wantMessage(t, u+"'s LastMessage", c.LastMessage, dissolved)
		if gs := f.userGroups(u); !slices.Equal(gs, []string{"g2"}) {
			t.Errorf("UserGroups(%s) = %v, want [g2]", u, gs)
		}
	}
	// carol, who had left, keeps her own leave position.
	if c := f.conv("carol", "g:g1"); c.Active || c.ReadSeq != 2 {
		t.Errorf("carol's row after dissolve = %+v, want inactive, read_seq 2", c)
	}
	if rs, err := f.st.JoinRequests(f.ctx, "g1"); err != nil || len(rs) != 0 {
		t.Errorf("JoinRequests after dissolve = %+v, %v; want none", rs, err)
	}
	if h := f.history("g:g1"); len(h) != 4 {
		t.Errorf("history after dissolve has %d messages, want 4", len(h))
	}
	if ms := f.members("g2"); len(ms) != 2 {
		t.Errorf("Members(g2) = %v, want bob and olga", memberIDs(ms))
	}
}

func testJoinRequests(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1))
	put := func(uid, msg string, at int64, max int) (bool, error) {
		return f.st.PutJoinRequest(f.ctx, &store.JoinRequest{GroupID: "g1", UserID: uid, Message: msg, CreatedAt: at}, max)
	}
	if created, err := put("zed", "hi ✨", base+2, 3); err != nil || !created {
		t.Fatalf("PutJoinRequest(zed) = %v, %v; want created", created, err)
	}
	if created, err := put("amy", "", base+3, 3); err != nil || !created {
		t.Fatalf("PutJoinRequest(amy) = %v, %v", created, err)
	}
	// A repeat changes nothing: same message and time.
	if created, err := put("zed", "again", base+9, 3); err != nil || created {
		t.Fatalf("repeated PutJoinRequest(zed) = %v, %v; want not created", created, err)
	}
	if created, err := put("bo", "", base+3, 3); err != nil || !created {
		t.Fatalf("PutJoinRequest(bo) = %v, %v", created, err)
	}
	// At the cap: a new one is refused, a repeat still is not.
	if _, err := put("cy", "", base+4, 3); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("PutJoinRequest over the cap: %v, want ErrLimit", err)
	}
	if created, err := put("amy", "", base+4, 3); err != nil || created {
		t.Fatalf("repeat at the cap = %v, %v", created, err)
	}
	rs, err := f.st.JoinRequests(f.ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.JoinRequest{
		{GroupID: "g1", UserID: "zed", Message: "hi ✨", CreatedAt: base + 2},
		{GroupID: "g1", UserID: "amy", CreatedAt: base + 3},
		{GroupID: "g1", UserID: "bo", CreatedAt: base + 3},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("JoinRequests = %+v, want %+v", rs, want)
	}
	if r, err := f.st.JoinRequest(f.ctx, "g1", "zed"); err != nil || *r != want[0] {
		t.Errorf("JoinRequest(zed) = %+v, %v", r, err)
	}
	_, err = f.st.JoinRequest(f.ctx, "g1", "cy")
	wantErr(t, "JoinRequest(cy)", err, store.ErrNotFound)
	if err := f.st.DeleteJoinRequest(f.ctx, "g1", "amy"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteJoinRequest twice", f.st.DeleteJoinRequest(f.ctx, "g1", "amy"), store.ErrNotFound)
	if rs, _ := f.st.JoinRequests(f.ctx, "g1"); len(rs) != 2 {
		t.Errorf("JoinRequests after a delete = %+v", rs)
	}
	if rs, err := f.st.JoinRequests(f.ctx, "nope"); err != nil || len(rs) != 0 {
		t.Errorf("JoinRequests(nope) = %+v, %v", rs, err)
	}
	// No cap (0): any number.
	if created, err := put("cy", "", base+5, 0); err != nil || !created {
		t.Errorf("PutJoinRequest without a cap = %v, %v", created, err)
	}
}

// A join, by any route, ends the joiner's request in the same commit.
func testJoinRequestsEnd(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1))
	for _, u := range []string{"amy", "bo"} {
		if _, err := f.st.PutJoinRequest(f.ctx, &store.JoinRequest{GroupID: "g1", UserID: u, CreatedAt: base + 1}, 0); err != nil {
			t.Fatal(err)
		}
	}
	f.commit(joins(sys("c2", "g1", 2, "joined", base+2), "amy"))
	rs, err := f.st.JoinRequests(f.ctx, "g1")
	if err != nil || len(rs) != 1 || rs[0].UserID != "bo" {
		t.Errorf("JoinRequests after amy joined = %+v, %v; want bo's only", rs, err)
	}
}

func testGroupCounts(t *testing.T, f *fixture) {
	f.commit(createGroup("c1", "g1", "olga", base+1, "bob"))
	f.commit(createGroup("c2", "g2", "olga", base+2))
	f.commit(createGroup("c3", "g3", "bob", base+3, "olga"))
	f.commit(leaves(sys("c4", "g3", 2, "left", base+4), "olga"))
	got, err := f.st.GroupCounts(f.ctx, []string{"olga", "bob", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"olga": 2, "bob": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("GroupCounts = %v, want %v", got, want)
	}
}
