package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBoundedRepeats(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Bounded(slog.NewTextHandler(&buf, nil), time.Hour))
	for i := 0; i < 1000; i++ {
		log.Error("commit failed", "error", "database is down")
		log.Info("connect refused", "reason", "bad token", "client_id", "x")
		log.Info("connect refused", "reason", "will on a topic the user may not publish to")
		log.Info("an ordinary line")
	}
	out := buf.String()
	for _, want := range []struct {
		line string
		n    int
	}{{"commit failed", 1}, {"reason=\"bad token\"", 1}, {"will on a topic", 1}, {"an ordinary line", 1000}} {
		if got := strings.Count(out, want.line); got != want.n {
			t.Errorf("%q logged %d times, want %d", want.line, got, want.n)
		}
	}
}

func TestBoundedCountsAfterInterval(t *testing.T) {
	var buf bytes.Buffer
	h := Bounded(slog.NewTextHandler(&buf, nil), time.Minute)
	t0 := time.Now()
	for i, at := range []time.Duration{0, time.Second, 2 * time.Second, 2 * time.Minute} {
		r := slog.NewRecord(t0.Add(at), slog.LevelWarn, "deliver failed", 0)
		if err := h.Handle(t.Context(), r); err != nil {
			t.Fatal(i, err)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "repeated") || !strings.Contains(lines[1], "repeated=2") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}

func TestRedacted(t *testing.T) {
	var buf bytes.Buffer
	log := New("debug", "json", &buf)
	log.Debug("publish packet error", "packet", "hello secret", "password", "pw", "client", "c1")
	if out := buf.String(); strings.Contains(out, "secret") || strings.Contains(out, `"pw"`) || !strings.Contains(out, "c1") {
		t.Fatalf("not redacted: %s", out)
	}
}
