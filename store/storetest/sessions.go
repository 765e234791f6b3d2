package storetest

import (
	"errors"
	"maps"
	"strconv"
	"testing"

	"github.com/mqim/mqim/store"
)

var sessionTests = []test{
	{"PutKeepsBaseline", testPutSession},
	{"DeleteRemovesPositions", testDeleteSession},
	{"PositionsOnlyRise", testSavePositions},
	{"EndOnlyByOwner", testEndSession},
	{"EndNodeSessionsAndExpire", testEndNodeSessions},
}

func testEndSession(t *testing.T, f *fixture) {
	// Connected on node a, then on node b (the device moved): a's late
	// disconnect must not mark b's connection ended.
	s := store.Session{ClientID: "bob/phone", UserID: "bob", Expiry: 60, Baseline: base, Node: "a", ConnectedAt: base + 1}
	if err := f.st.PutSession(f.ctx, &s); err != nil {
		t.Fatal(err)
	}
	moved := s
	moved.Node, moved.ConnectedAt = "b", base+2
	if err := f.st.PutSession(f.ctx, &moved); err != nil {
		t.Fatal(err)
	}
	late := s
	late.DisconnectedAt = base + 3
	if wrote, err := f.st.EndSession(f.ctx, &late); err != nil || wrote {
		t.Fatalf("EndSession by the old connection = %v, %v; want no write", wrote, err)
	}
	if got, _ := f.st.Session(f.ctx, "bob/phone"); got.DisconnectedAt != 0 || got.Node != "b" || got.ConnectedAt != base+2 {
		t.Fatalf("after the old connection's end: %+v", got)
	}
	end := moved
	end.DisconnectedAt, end.Expiry = base+4, 30
	if wrote, err := f.st.EndSession(f.ctx, &end); err != nil || !wrote {
		t.Fatalf("EndSession by the owner = %v, %v", wrote, err)
	}
	if got, _ := f.st.Session(f.ctx, "bob/phone"); got.DisconnectedAt != base+4 || got.Expiry != 30 || got.Baseline != base {
		t.Fatalf("after the owner's end: %+v", got)
	}
	// No row (its connect could not be stored): the end stores it.
	none := store.Session{ClientID: "amy/web", UserID: "amy", Expiry: 60, Baseline: base, Node: "a", ConnectedAt: base, DisconnectedAt: base + 5}
	if wrote, err := f.st.EndSession(f.ctx, &none); err != nil || !wrote {
		t.Fatalf("EndSession of no row = %v, %v", wrote, err)
	}
	if got, err := f.st.Session(f.ctx, "amy/web"); err != nil || got.DisconnectedAt != base+5 {
		t.Fatalf("stored by its end: %+v, %v", got, err)
	}
}

func testEndNodeSessions(t *testing.T, f *fixture) {
	for _, s := range []store.Session{
		{ClientID: "a/1", UserID: "a", Expiry: 10, Baseline: base, Node: "dead", ConnectedAt: base},
		{ClientID: "a/2", UserID: "a", Expiry: 10, Baseline: base, Node: "dead", ConnectedAt: base, DisconnectedAt: base + 1},
		{ClientID: "b/1", UserID: "b", Expiry: 10, Baseline: base, Node: "alive", ConnectedAt: base},
	} {
		if err := f.st.PutSession(f.ctx, &s); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.SavePositions(f.ctx, []store.Position{{ClientID: "a/1", Conv: "d:a:b", Seq: 3}}); err != nil {
		t.Fatal(err)
	}
	n, err := f.st.EndNodeSessions(f.ctx, "dead", base+100)
	if err != nil || n != 1 {
		t.Fatalf("EndNodeSessions = %d, %v; want the one still connected", n, err)
	}
	if got, _ := f.st.Session(f.ctx, "a/1"); got.DisconnectedAt != base+100 {
		t.Fatalf("a/1 = %+v", got)
	}
	if got, _ := f.st.Session(f.ctx, "a/2"); got.DisconnectedAt != base+1 {
		t.Fatalf("a/2 (ended before) = %+v", got)
	}
	// At base+100+10 s + 1: a/1 and a/2 expired, b/1 is connected.
	n, err = f.st.DeleteExpiredSessions(f.ctx, base+100+10_001)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want 2", n, err)
	}
	all, _ := f.st.ListSessions(f.ctx)
	if len(all) != 1 || all[0].ClientID != "b/1" {
		t.Fatalf("left: %+v", all)
	}
	if ps, _ := f.st.Positions(f.ctx, "a/1"); len(ps) != 0 {
		t.Fatalf("positions of an expired session left: %v", ps)
	}
}

func testPutSession(t *testing.T, f *fixture) {
	if _, err := f.st.Session(f.ctx, "bob/phone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Session of none: %v, want ErrNotFound", err)
	}
	s := store.Session{ClientID: "bob/phone", UserID: "bob", Expiry: 3600, Baseline: base}
	if err := f.st.PutSession(f.ctx, &s); err != nil {
		t.Fatal(err)
	}
	// The session goes on: a later put keeps its baseline.
	again := store.Session{ClientID: "bob/phone", UserID: "bob", Expiry: 60, Baseline: base + 5000, DisconnectedAt: base + 9000}
	if err := f.st.PutSession(f.ctx, &again); err != nil {
		t.Fatal(err)
	}
	if again.Baseline != base {
		t.Errorf("PutSession read back baseline %d, want %d", again.Baseline, base)
	}
	got, err := f.st.Session(f.ctx, "bob/phone")
	if err != nil {
		t.Fatal(err)
	}
	if got.Baseline != base || got.Expiry != 60 || got.DisconnectedAt != base+9000 || got.UserID != "bob" || got.UpdatedAt == 0 {
		t.Errorf("Session = %+v", got)
	}
	if !got.Expired(base+9000+61_000) || got.Expired(base+9000+59_000) {
		t.Errorf("Expired wrong for %+v", got)
	}
	other := store.Session{ClientID: "amy/web", UserID: "amy", Expiry: 1, Baseline: base}
	if err := f.st.PutSession(f.ctx, &other); err != nil {
		t.Fatal(err)
	}
	all, err := f.st.ListSessions(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ClientID != "amy/web" || all[1].ClientID != "bob/phone" {
		t.Errorf("ListSessions = %+v", all)
	}
}

func testDeleteSession(t *testing.T, f *fixture) {
	s := store.Session{ClientID: "bob/phone", UserID: "bob", Expiry: 3600, Baseline: base}
	if err := f.st.PutSession(f.ctx, &s); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SavePositions(f.ctx, []store.Position{{ClientID: "bob/phone", Conv: "d:amy:bob", Seq: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteSession(f.ctx, "bob/phone"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteSession(f.ctx, "bob/phone"); err != nil {
		t.Fatalf("deleting none: %v", err)
	}
	if _, err := f.st.Session(f.ctx, "bob/phone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Session after delete: %v", err)
	}
	ps, err := f.st.Positions(f.ctx, "bob/phone")
	if err != nil || len(ps) != 0 {
		t.Errorf("Positions after delete = %v, %v", ps, err)
	}
}

func testSavePositions(t *testing.T, f *fixture) {
	if err := f.st.SavePositions(f.ctx, nil); err != nil {
		t.Fatal(err)
	}
	var many []store.Position
	want := map[string]int64{}
	for i := range 1200 { // more than one statement's parameters
		conv := "g:" + string(rune('a'+i%26)) + strconv.Itoa(i)
		many = append(many, store.Position{ClientID: "bob/phone", Conv: conv, Seq: int64(i + 1)})
		want[conv] = int64(i + 1)
	}
	many = append(many, store.Position{ClientID: "amy/web", Conv: "d:amy:bob", Seq: 7})
	if err := f.st.SavePositions(f.ctx, many); err != nil {
		t.Fatal(err)
	}
	// Lower seqs never move a position back; higher ones raise it.
	if err := f.st.SavePositions(f.ctx, []store.Position{
		{ClientID: "bob/phone", Conv: many[0].Conv, Seq: 0},
		{ClientID: "bob/phone", Conv: many[1].Conv, Seq: 99},
	}); err != nil {
		t.Fatal(err)
	}
	want[many[1].Conv] = 99
	got, err := f.st.Positions(f.ctx, "bob/phone")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Positions: %d rows, want %d (first %s=%d)", len(got), len(want), many[1].Conv, got[many[1].Conv])
	}
	if got, _ := f.st.Positions(f.ctx, "amy/web"); got["d:amy:bob"] != 7 || len(got) != 1 {
		t.Errorf("Positions(amy/web) = %v", got)
	}
}
