package broker

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/mqim/mqim/store"
)

func TestEventPosition(t *testing.T) {
	for _, tc := range []struct {
		payload string
		conv    string
		seq     int64
	}{
		{`{"kind":"msg","id":"01J","conv":"d:a:b","seq":42,"from":"a","body":{"seq":7}}`, "d:a:b", 42},
		{`{"kind":"recall","conv":"g:x","id":"01J","by":"a","ts":1,"seq":9}`, "g:x", 9},
		{`{"kind":"edit","conv":"g:x","id":"01J","by":"a","body":{"text":"a","seq":1},"ts":1,"seq":10}`, "g:x", 10},
		{`{"kind":"read","conv":"g:x","user":"a","seq":3}`, "", 0},
		{`{"kind":"typing","conv":"g:x","user":"a"}`, "", 0},
		{`{"kind":"sync","reason":"overflow"}`, "", 0},
		{`plain text`, "", 0},
		{`{"kind":"msg","conv":"g:x"}`, "", 0},
	} {
		conv, seq := eventPosition([]byte(tc.payload))
		if conv != tc.conv || seq != tc.seq {
			t.Errorf("eventPosition(%s) = %q %d, want %q %d", tc.payload, conv, seq, tc.conv, tc.seq)
		}
	}
}

type memPositions struct {
	mu    sync.Mutex
	saved map[store.Position]bool
	n     int
}

func (m *memPositions) SavePositions(_ context.Context, ps []store.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	for _, p := range ps {
		m.saved[p] = true
	}
	return nil
}

func (m *memPositions) Positions(context.Context, string) (map[string]int64, error) { return nil, nil }

func msg(conv string, seq int) []byte {
	return []byte(`{"kind":"msg","id":"x","conv":"` + conv + `","seq":` + strconv.Itoa(seq) + `}`)
}

// A position moves over the acknowledged prefix of what was sent, never
// past an event still unacknowledged; a dropped event stops holding it.
func TestPositionsContiguous(t *testing.T) {
	st := &memPositions{saved: map[store.Position]bool{}}
	p := newPositions(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.close()
	for i := 1; i <= 4; i++ {
		p.sent("bob/p", uint16(i), msg("c", 10+i))
	}
	p.sent("bob/p", 9, []byte(`{"kind":"read","conv":"c","seq":99}`))
	pos := func() (int64, bool) {
		s, _ := p.snapshot("bob/p")
		v, ok := s["c"]
		return v, ok
	}
	if _, ok := pos(); ok {
		t.Fatal("a position before any acknowledgement")
	}
	p.complete("bob/p", 2)
	p.complete("bob/p", 9)
	if _, ok := pos(); ok {
		t.Fatal("position moved over an unacknowledged event")
	}
	p.complete("bob/p", 1)
	if v, _ := pos(); v != 12 {
		t.Fatalf("position %d, want 12", v)
	}
	// Packet id 3 is reused: its event was dropped unsent.
	p.sent("bob/p", 3, msg("c", 20))
	if v, _ := pos(); v != 12 {
		t.Fatalf("position %d, want 12 (14 is still unacknowledged)", v)
	}
	p.complete("bob/p", 4)
	if v, _ := pos(); v != 14 {
		t.Fatalf("position %d, want 14", v)
	}
	p.complete("bob/p", 3)
	if v, _ := pos(); v != 20 {
		t.Fatalf("position %d, want 20", v)
	}
	_, sent := p.snapshot("bob/p")
	if len(sent["c"]) != 0 {
		t.Errorf("sent above the position: %v", sent)
	}
	p.flush()
	if !st.saved[store.Position{ClientID: "bob/p", Conv: "c", Seq: 20}] || st.n != 1 {
		t.Errorf("saved %v in %d writes", st.saved, st.n)
	}
	p.flush()
	if st.n != 1 {
		t.Errorf("a flush with nothing new wrote")
	}
	p.seed("bob/p", map[string]int64{"c": 15, "d": 3})
	if v, _ := pos(); v != 20 {
		t.Errorf("a stored position lowered the one in memory: %d", v)
	}
}

// An event Mochi could not queue no longer holds the position back.
func TestPositionsDroppedEvent(t *testing.T) {
	p := newPositions(&memPositions{saved: map[store.Position]bool{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.close()
	p.sent("bob/p", 1, msg("c", 1))
	p.sent("bob/p", 2, msg("c", 2))
	p.sent("bob/p", 3, msg("c", 3))
	p.droppedEvent("bob/p", msg("c", 2))
	p.complete("bob/p", 1)
	p.complete("bob/p", 3)
	if s, _ := p.snapshot("bob/p"); s["c"] != 3 {
		t.Fatalf("position %d, want 3", s["c"])
	}
}
