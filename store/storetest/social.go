package storetest

import (
	"reflect"
	"testing"

	"github.com/mqim/mqim/store"
)

var socialTests = []test{
	{"RequestIdempotentAndListed", testFriendRequests},
	{"DeleteRequest", testDeleteFriendRequest},
	{"AddFriendsBothWaysDropsRequests", testAddFriends},
	{"AddFriendsTwiceConflicts", testAddFriendsTwice},
	{"RemoveFriends", testRemoveFriends},
	{"BlockIdempotentDropsRequests", testPutBlock},
	{"DeleteBlock", testDeleteBlock},
	{"Counts", testSocialCounts},
}

func (f *fixture) request(from, to, message string, at int64) bool {
	f.t.Helper()
	created, err := f.st.PutFriendRequest(f.ctx, &store.FriendRequest{From: from, To: to, Message: message, CreatedAt: at})
	if err != nil {
		f.t.Fatalf("PutFriendRequest(%s→%s): %v", from, to, err)
	}
	return created
}

func (f *fixture) wantRequests(uid string, in, out []store.FriendRequest) {
	f.t.Helper()
	gotIn, gotOut, err := f.st.FriendRequests(f.ctx, uid)
	if err != nil {
		f.t.Fatalf("FriendRequests(%s): %v", uid, err)
	}
	if in == nil {
		in = []store.FriendRequest{}
	}
	if out == nil {
		out = []store.FriendRequest{}
	}
	if !reflect.DeepEqual(gotIn, in) || !reflect.DeepEqual(gotOut, out) {
		f.t.Errorf("FriendRequests(%s) = in %+v out %+v, want in %+v out %+v", uid, gotIn, gotOut, in, out)
	}
}

func (f *fixture) wantFriends(uid string, want ...store.Friend) {
	f.t.Helper()
	got, err := f.st.Friends(f.ctx, uid)
	if err != nil {
		f.t.Fatalf("Friends(%s): %v", uid, err)
	}
	if want == nil {
		want = []store.Friend{}
	}
	if !reflect.DeepEqual(got, want) {
		f.t.Errorf("Friends(%s) = %+v, want %+v", uid, got, want)
	}
}

func (f *fixture) wantBlocks(uid string, want ...store.Block) {
	f.t.Helper()
	got, err := f.st.Blocks(f.ctx, uid)
	if err != nil {
		f.t.Fatalf("Blocks(%s): %v", uid, err)
	}
	if want == nil {
		want = []store.Block{}
	}
	if !reflect.DeepEqual(got, want) {
		f.t.Errorf("Blocks(%s) = %+v, want %+v", uid, got, want)
	}
}

func testFriendRequests(t *testing.T, f *fixture) {
	if !f.request("alice", "bob", "hi bob, it's me 😀", base) {
		t.Fatal("first request not created")
	}
	// A repeat keeps the first (its message and time).
	if f.request("alice", "bob", "again", base+5) {
		t.Error("repeated request reported as created")
	}
	f.request("carol", "bob", "", base+10)
	f.request("bob", "dave", "", base+20)
	ab := store.FriendRequest{From: "alice", To: "bob", Message: "hi bob, it's me 😀", CreatedAt: base}
	cb := store.FriendRequest{From: "carol", To: "bob", CreatedAt: base + 10}
	bd := store.FriendRequest{From: "bob", To: "dave", CreatedAt: base + 20}
	f.wantRequests("bob", []store.FriendRequest{cb, ab}, []store.FriendRequest{bd}) // newest first
	f.wantRequests("alice", nil, []store.FriendRequest{ab})
	f.wantRequests("erin", nil, nil)
	got, err := f.st.FriendRequest(f.ctx, "alice", "bob")
	if err != nil || !reflect.DeepEqual(*got, ab) {
		t.Errorf("FriendRequest(alice, bob) = %+v, %v", got, err)
	}
	_, err = f.st.FriendRequest(f.ctx, "bob", "alice")
	wantErr(t, "FriendRequest the other way", err, store.ErrNotFound)
}

func testDeleteFriendRequest(t *testing.T, f *fixture) {
	f.request("alice", "bob", "", base)
	wantErr(t, "delete the reverse", f.st.DeleteFriendRequest(f.ctx, "bob", "alice"), store.ErrNotFound)
	if err := f.st.DeleteFriendRequest(f.ctx, "alice", "bob"); err != nil {
		t.Fatalf("DeleteFriendRequest: %v", err)
	}
	wantErr(t, "delete again", f.st.DeleteFriendRequest(f.ctx, "alice", "bob"), store.ErrNotFound)
	f.wantRequests("bob", nil, nil)
}

func testAddFriends(t *testing.T, f *fixture) {
	f.request("alice", "bob", "", base)
	f.request("bob", "alice", "", base+1)
	f.request("alice", "carol", "", base+2)
	if err := f.st.AddFriends(f.ctx, "bob", "alice", base+10); err != nil {
		t.Fatalf("AddFriends: %v", err)
	}
	f.wantFriends("alice", store.Friend{UserID: "bob", Since: base + 10})
	f.wantFriends("bob", store.Friend{UserID: "alice", Since: base + 10})
	// Both requests between them are gone, the one to carol stays.
	f.wantRequests("bob", nil, nil)
	f.wantRequests("alice", nil, []store.FriendRequest{{From: "alice", To: "carol", CreatedAt: base + 2}})
	if err := f.st.AddFriends(f.ctx, "carol", "alice", base+20); err != nil {
		t.Fatalf("AddFriends: %v", err)
	}
	f.wantFriends("alice", store.Friend{UserID: "bob", Since: base + 10}, store.Friend{UserID: "carol", Since: base + 20})
	f.wantFriends("dave")
}

func testAddFriendsTwice(t *testing.T, f *fixture) {
	if err := f.st.AddFriends(f.ctx, "alice", "bob", base); err != nil {
		t.Fatal(err)
	}
	f.request("bob", "alice", "", base+1) // the store does not judge; chat does
	wantErr(t, "AddFriends again", f.st.AddFriends(f.ctx, "bob", "alice", base+5), store.ErrConflict)
	// Nothing changed: the friendship keeps its time, the request stays.
	f.wantFriends("alice", store.Friend{UserID: "bob", Since: base})
	f.wantFriends("bob", store.Friend{UserID: "alice", Since: base})
	f.wantRequests("alice", []store.FriendRequest{{From: "bob", To: "alice", CreatedAt: base + 1}}, nil)
}

func testRemoveFriends(t *testing.T, f *fixture) {
	wantErr(t, "RemoveFriends of strangers", f.st.RemoveFriends(f.ctx, "alice", "bob"), store.ErrNotFound)
	for _, p := range [][2]string{{"alice", "bob"}, {"alice", "carol"}} {
		if err := f.st.AddFriends(f.ctx, p[0], p[1], base); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.RemoveFriends(f.ctx, "bob", "alice"); err != nil {
		t.Fatalf("RemoveFriends: %v", err)
	}
	f.wantFriends("alice", store.Friend{UserID: "carol", Since: base})
	f.wantFriends("bob")
	wantErr(t, "RemoveFriends again", f.st.RemoveFriends(f.ctx, "alice", "bob"), store.ErrNotFound)
}

func testPutBlock(t *testing.T, f *fixture) {
	f.request("bob", "alice", "", base)
	f.request("alice", "bob", "", base+1)
	f.request("bob", "carol", "", base+2)
	created, err := f.st.PutBlock(f.ctx, "alice", "bob", base+10)
	if err != nil || !created {
		t.Fatalf("PutBlock = %v, %v", created, err)
	}
	created, err = f.st.PutBlock(f.ctx, "alice", "bob", base+20)
	if err != nil || created {
		t.Fatalf("PutBlock again = %v, %v; want false, nil", created, err)
	}
	f.wantBlocks("alice", store.Block{UserID: "bob", CreatedAt: base + 10}) // the first time stays
	f.wantBlocks("bob")                                                     // one direction only
	// The requests between them are gone both ways; bob's to carol stays.
	f.wantRequests("alice", nil, nil)
	f.wantRequests("bob", nil, []store.FriendRequest{{From: "bob", To: "carol", CreatedAt: base + 2}})
	// A block does not end a friendship (chat decides).
	if err := f.st.AddFriends(f.ctx, "alice", "bob", base+30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.PutBlock(f.ctx, "carol", "alice", base+40); err != nil {
		t.Fatal(err)
	}
	f.wantFriends("alice", store.Friend{UserID: "bob", Since: base + 30})
}

func testDeleteBlock(t *testing.T, f *fixture) {
	wantErr(t, "DeleteBlock of none", f.st.DeleteBlock(f.ctx, "alice", "bob"), store.ErrNotFound)
	for _, b := range []string{"bob", "carol"} {
		if _, err := f.st.PutBlock(f.ctx, "alice", b, base); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "DeleteBlock the other way", f.st.DeleteBlock(f.ctx, "bob", "alice"), store.ErrNotFound)
	if err := f.st.DeleteBlock(f.ctx, "alice", "bob"); err != nil {
		t.Fatalf("DeleteBlock: %v", err)
	}
	f.wantBlocks("alice", store.Block{UserID: "carol", CreatedAt: base})
}

func testSocialCounts(t *testing.T, f *fixture) {
	counts := func(uid string) store.SocialCounts {
		t.Helper()
		c, err := f.st.SocialCounts(f.ctx, uid)
		if err != nil {
			t.Fatalf("SocialCounts(%s): %v", uid, err)
		}
		return c
	}
	if c := counts("alice"); c != (store.SocialCounts{}) {
		t.Errorf("empty: %+v", c)
	}
	f.request("alice", "bob", "", base)
	f.request("alice", "carol", "", base)
	f.request("dave", "alice", "", base) // incoming: not counted
	if err := f.st.AddFriends(f.ctx, "alice", "erin", base); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"x", "y", "z"} {
		if _, err := f.st.PutBlock(f.ctx, "alice", b, base); err != nil {
			t.Fatal(err)
		}
	}
	if c, want := counts("alice"), (store.SocialCounts{Outgoing: 2, Friends: 1, Blocks: 3}); c != want {
		t.Errorf("alice: %+v, want %+v", c, want)
	}
	if c, want := counts("erin"), (store.SocialCounts{Friends: 1}); c != want {
		t.Errorf("erin: %+v, want %+v", c, want)
	}
}
