// Package retry holds what the asynchronous senders (push, webhooks) share:
// the full-jitter exponential backoff and a rate-limited warning log.
package retry

import (
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Backoff returns the wait before the retry-th resend (1-based): drawn
// uniformly from [0, min(max, base·2^(retry-1))) ("full jitter"). base must
// be positive and max at least base.
func Backoff(base, max time.Duration, retry int) time.Duration {
	window := max
	if shift := retry - 1; shift >= 0 && shift < 62 {
		if w := base << shift; w > 0 && w < window {
			window = w
		}
	}
	return rand.N(window)
}

// Warner logs at most one warning per second, reporting how many were
// suppressed in between, so that an outage does not flood the log. The
// zero value is ready to use.
type Warner struct {
	last       atomic.Int64 // unix nanos of the last warning logged
	suppressed atomic.Int64
}

// Warn logs msg at warning level unless a warning was logged less than a
// second ago.
func (w *Warner) Warn(log *slog.Logger, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := w.last.Load()
	if now-last < int64(time.Second) || !w.last.CompareAndSwap(last, now) {
		w.suppressed.Add(1)
		return
	}
	if s := w.suppressed.Swap(0); s > 0 {
		args = append(args, "suppressed_warnings", s)
	}
	log.Warn(msg, args...)
}
