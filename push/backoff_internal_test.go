package push

import (
	"testing"
	"time"
)

func TestBackoffFullJitter(t *testing.T) {
	d := NewDispatcher(nil, DispatcherOptions{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	for retry := 1; retry <= 70; retry++ {
		window := min(80*time.Millisecond, 10*time.Millisecond<<min(retry-1, 10))
		var hi time.Duration
		for range 2000 {
			b := d.backoff(retry)
			if b < 0 || b >= window {
				t.Fatalf("retry %d: backoff %v outside [0, %v)", retry, b, window)
			}
			hi = max(hi, b)
		}
		if hi < window/2 {
			t.Fatalf("retry %d: largest of 2000 draws %v, window %v: not jittered over the window", retry, hi, window)
		}
	}
}

func TestDefaults(t *testing.T) {
	d := NewDispatcher(nil, DispatcherOptions{BatchMax: 1000, MaxRetries: -1})
	o := d.o
	if o.Queue != DefaultQueue || o.Workers != DefaultWorkers || o.BatchMax != MaxBatch || o.MaxRetries != 0 ||
		o.BaseBackoff != DefaultBaseBackoff || o.MaxBackoff != DefaultMaxBackoff {
		t.Fatalf("%+v", o)
	}
	if NewDispatcher(nil, DispatcherOptions{}).o.MaxRetries != DefaultMaxRetries || NewDispatcher(nil, DispatcherOptions{}).o.BatchMax != DefaultBatchMax {
		t.Fatal("defaults")
	}
}
