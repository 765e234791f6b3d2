package storetest

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/mqim/mqim/store"
)

var userTests = []test{
	{"CreateThenUpdate", testUpsertUser},
	{"NilExtStaysNil", testUserNilExt},
	{"UnknownIsNotFound", testUserNotFound},
	{"UsersByID", testUsersByID},
}

// diffUser compares users field by field, Ext by JSON value.
func diffUser(got, want *store.User) string {
	if !jsonEqual(got.Ext, want.Ext) {
		return fmt.Sprintf("Ext %s, want %s", showJSON(got.Ext), showJSON(want.Ext))
	}
	g, w := *got, *want
	g.Ext, w.Ext = nil, nil
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("%+v, want %+v", g, w)
	}
	return ""
}

func testUpsertUser(t *testing.T, f *fixture) {
	u := &store.User{
		ID: "alice", Name: "Alice Ålander 😀", Avatar: "https://img/a.png",
		Ext: store.JSON(`{"dept":"R&D","level":3,"tags":["a","b"]}`), PasswordHash: "$2a$10$hash",
		TokensAfter: base,
	}
	if !f.upsertUser(u) {
		t.Fatal("UpsertUser of a new user: created = false")
	}
	if u.CreatedAt == 0 || u.UpdatedAt == 0 {
		t.Fatalf("UpsertUser did not fill CreatedAt/UpdatedAt: %+v", u)
	}
	first := *u
	got, err := f.st.User(f.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if d := diffUser(got, &first); d != "" {
		t.Fatalf("User after create: %s", d)
	}

	// Update every profile field; CreatedAt as sent must be ignored.
	upd := &store.User{
		ID: "alice", Name: "Alice B", Avatar: "https://img/b.png",
		Ext: store.JSON(`{"dept":"Ops"}`), PasswordHash: "$2a$10$other",
		Disabled: true, TokensAfter: base + 1000, CreatedAt: 42,
	}
	if f.upsertUser(upd) {
		t.Fatal("UpsertUser of an existing user: created = true")
	}
	got, err = f.st.User(f.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := store.User{
		ID: "alice", Name: "Alice B", Avatar: "https://img/b.png",
		Ext: store.JSON(`{"dept":"Ops"}`), PasswordHash: "$2a$10$other",
		Disabled: true, TokensAfter: base + 1000,
		CreatedAt: first.CreatedAt, UpdatedAt: got.UpdatedAt,
	}
	if d := diffUser(got, &want); d != "" {
		t.Fatalf("User after update: %s", d)
	}
	if got.UpdatedAt < first.UpdatedAt {
		t.Errorf("UpdatedAt went back: %d < %d", got.UpdatedAt, first.UpdatedAt)
	}
	// The argument is refreshed with the stored row.
	if upd.CreatedAt != first.CreatedAt {
		t.Errorf("UpsertUser left u.CreatedAt = %d, want the stored %d", upd.CreatedAt, first.CreatedAt)
	}

	// Disabled goes back to false, Ext can be cleared.
	if f.upsertUser(&store.User{ID: "alice", Name: "Alice C"}) {
		t.Fatal("third UpsertUser: created = true")
	}
	got, err = f.st.User(f.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.Disabled || got.Name != "Alice C" || got.Ext != nil || got.CreatedAt != first.CreatedAt {
		t.Errorf("User after third upsert = %+v (Ext %s)", got, showJSON(got.Ext))
	}
}

func testUserNilExt(t *testing.T, f *fixture) {
	if !f.upsertUser(&store.User{ID: "bob", Name: "Bob"}) {
		t.Fatal("created = false")
	}
	got, err := f.st.User(f.ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if got.Ext != nil {
		t.Errorf("Ext of a user stored without one = %s, want nil", showJSON(got.Ext))
	}
	// "null" is absent too.
	f.upsertUser(&store.User{ID: "carol", Ext: store.JSON(`null`)})
	got, err = f.st.User(f.ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Ext) != 0 && string(got.Ext) != "null" {
		t.Errorf("Ext stored as null reads back as %s", showJSON(got.Ext))
	}
}

func testUserNotFound(t *testing.T, f *fixture) {
	_, err := f.st.User(f.ctx, "nobody")
	wantErr(t, "User(nobody)", err, store.ErrNotFound)
	f.upsertUser(&store.User{ID: "alice"})
	_, err = f.st.User(f.ctx, "ALICE")
	wantErr(t, "User(ALICE): ids are case-sensitive", err, store.ErrNotFound)
}

func testUsersByID(t *testing.T, f *fixture) {
	for _, id := range []string{"alice", "bob", "carol"} {
		f.upsertUser(&store.User{ID: id, Name: "name of " + id})
	}
	got, err := f.st.UsersByID(f.ctx, []string{"bob", "nobody", "alice", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["alice"] == nil || got["bob"] == nil {
		t.Fatalf("UsersByID = %v, want exactly alice and bob", got)
	}
	for id, u := range got {
		if u.ID != id || u.Name != "name of "+id || u.CreatedAt == 0 {
			t.Errorf("UsersByID[%s] = %+v", id, u)
		}
	}
	got, err = f.st.UsersByID(f.ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("UsersByID(nil) = %v, %v; want empty", got, err)
	}
	// More ids than one statement may bind.
	many := make([]string, 0, 9001)
	for i := range 9000 {
		many = append(many, fmt.Sprintf("ghost%04d", i))
	}
	many = append(many, "carol")
	got, err = f.st.UsersByID(f.ctx, many)
	if err != nil {
		t.Fatalf("UsersByID(9001 ids): %v", err)
	}
	if len(got) != 1 || got["carol"] == nil {
		t.Errorf("UsersByID(9001 ids) = %v, want only carol", got)
	}
}
