// Package ratelimit keeps one token bucket per key (a user id, a remote
// address) in bounded memory. It is what mqim's per-user limits are made of.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxKeys bounds the buckets held at once. Past it the buckets that are
// full again (idle keys, indistinguishable from new ones) are dropped; if
// every bucket is in use the oldest half of the map is dropped (a key that
// loses its bucket starts full again: limits then err on the lenient side,
// memory never grows).
const maxKeys = 100_000

// Keyed is a set of token buckets, one per key, each refilling at the same
// rate up to the same burst. It is safe for concurrent use and never blocks
// beyond a map lookup.
type Keyed struct {
	every rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// New returns buckets refilling at perSecond tokens per second up to
// burst. A rate or burst of 0 or less means no limit: a nil *Keyed, whose
// methods allow everything.
func New(perSecond float64, burst int) *Keyed {
	if perSecond <= 0 || burst <= 0 {
		return nil
	}
	return &Keyed{every: rate.Limit(perSecond), burst: burst, m: map[string]*rate.Limiter{}}
}

// bucket returns key's bucket, creating a full one. Callers hold mu.
func (k *Keyed) bucket(key string, now time.Time) *rate.Limiter {
	l := k.m[key]
	if l == nil {
		if len(k.m) >= maxKeys {
			k.sweep(now)
		}
		l = rate.NewLimiter(k.every, k.burst)
		k.m[key] = l
	}
	return l
}

func (k *Keyed) sweep(now time.Time) {
	for key, l := range k.m {
		if l.TokensAt(now) >= float64(k.burst) {
			delete(k.m, key)
		}
	}
	if len(k.m) >= maxKeys/2 {
		n := 0
		for key := range k.m {
			delete(k.m, key)
			if n++; n >= maxKeys/2 {
				break
			}
		}
	}
}

// Allow takes one token from key's bucket. When there is none it takes
// nothing and returns false with how long until one is there.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	if k == nil {
		return true, 0
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.bucket(key, now)
	if l.AllowN(now, 1) {
		return true, 0
	}
	return false, wait(l, now)
}

// Blocked tells, without taking anything, whether key's bucket is empty,
// and if so for how long. With Hit it counts events (failed logins) that
// stop further attempts once there were too many.
func (k *Keyed) Blocked(key string) (bool, time.Duration) {
	if k == nil {
		return false, 0
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.m[key]
	if !ok || l.TokensAt(now) >= 1 {
		return false, 0
	}
	return true, wait(l, now)
}

// Hit takes one token from key's bucket if there is one.
func (k *Keyed) Hit(key string) {
	if k == nil {
		return
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.bucket(key, now).AllowN(now, 1)
}

// wait is how long until l holds one token.
func wait(l *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - l.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(l.Limit()) * float64(time.Second))
}
