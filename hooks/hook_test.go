package hooks

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLazyTimeout: the context times out d after first use, and is done
// once stopped, whether it was used or not.
func TestLazyTimeout(t *testing.T) {
	used := &lazyTimeout{d: time.Hour}
	dl, ok := used.Deadline()
	if !ok || time.Until(dl) < 59*time.Minute || time.Until(dl) > time.Hour {
		t.Fatalf("deadline %v, %v: want about an hour from now", dl, ok)
	}
	if used.Err() != nil {
		t.Fatalf("err %v before the deadline", used.Err())
	}
	used.stop()
	select {
	case <-used.Done():
	default:
		t.Fatal("not done once stopped")
	}
	if !errors.Is(used.Err(), context.Canceled) {
		t.Fatalf("err %v once stopped", used.Err())
	}

	unused := &lazyTimeout{d: time.Hour}
	unused.stop()
	if unused.cancel != nil {
		t.Fatal("a timer was started for a context nobody used")
	}
	select {
	case <-unused.Done():
	default:
		t.Fatal("not done once stopped")
	}

	short := &lazyTimeout{d: time.Millisecond}
	defer short.stop()
	<-short.Done()
	if !errors.Is(short.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v after the deadline", short.Err())
	}
}
