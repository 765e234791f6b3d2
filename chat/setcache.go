package chat

import (
	"context"
	"sync"
	"time"
)

// setCache holds, per key (a user id), a set of ids loaded from the store:
// the users someone blocked, someone's friends, the groups someone belongs
// to. The send path asks it on every 1:1 message, so a warm answer is a map
// lookup under a read lock. Changes made through this process call forget
// at once; entries also expire after ttl, so that changes made by other
// nodes show. Memory is bounded: past maxSetKeys keys or maxSetIDs ids in
// all, the cache starts over.
type setCache struct {
	ttl  time.Duration
	load func(ctx context.Context, key string) ([]string, error)
	// changed is told of the keys a local change made forget drop.
	changed func(keys []string)

	mu sync.RWMutex
	m  map[string]*setEntry
	// gen counts the changes to each key; epoch counts resets. A load that
	// raced a change (either moved while it read the store) is not cached,
	// or a block could be forgotten for a whole TTL.
	gen   map[string]uint64
	epoch uint64
	size  int // ids held by m
}

// setEntry is an immutable snapshot: changes replace or drop it.
type setEntry struct {
	ids    map[string]struct{}
	loaded time.Time
}

const (
	maxSetKeys = 200_000
	maxSetIDs  = 2_000_000
)

// newSetCache returns a cache that loads a key's set with load; changed,
// if not nil, is told of the keys forget drops (the other nodes of a
// cluster drop theirs).
func newSetCache(ttl time.Duration, load func(ctx context.Context, key string) ([]string, error), changed func(keys []string)) *setCache {
	return &setCache{ttl: ttl, load: load, changed: changed, m: map[string]*setEntry{}, gen: map[string]uint64{}}
}

// get returns key's set; callers must not modify it.
func (c *setCache) get(ctx context.Context, key string) (map[string]struct{}, error) {
	c.mu.RLock()
	e, gen, epoch := c.m[key], c.gen[key], c.epoch
	c.mu.RUnlock()
	if e != nil && time.Since(e.loaded) < c.ttl {
		return e.ids, nil
	}
	ids, err := c.load(ctx, key)
	if err != nil {
		return nil, err
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[key] != gen || c.epoch != epoch {
		return set, nil // good for this answer only: the next get reads the change
	}
	if old := c.m[key]; old != nil {
		c.size -= len(old.ids)
	}
	if len(c.m) >= maxSetKeys || len(c.gen) >= maxSetKeys || c.size+len(set) > maxSetIDs {
		c.m, c.gen, c.size = map[string]*setEntry{}, map[string]uint64{}, 0
		c.epoch++
	}
	c.m[key] = &setEntry{ids: set, loaded: time.Now()}
	c.size += len(set)
	return set, nil
}

// has tells whether id is in key's set.
func (c *setCache) has(ctx context.Context, key, id string) (bool, error) {
	set, err := c.get(ctx, key)
	if err != nil {
		return false, err
	}
	_, ok := set[id]
	return ok, nil
}

// forget drops keys after a change made here, so that the next get of
// each reloads it, and tells changed.
func (c *setCache) forget(keys ...string) {
	c.drop(keys...)
	if c.changed != nil {
		c.changed(keys)
	}
}

// reset drops every key.
func (c *setCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.gen, c.size = map[string]*setEntry{}, map[string]uint64{}, 0
	c.epoch++
}

// drop drops keys, so that the next get of each reloads it (a change
// made here, or one another node made).
func (c *setCache) drop(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.gen) >= 2*maxSetKeys {
		c.m, c.gen, c.size = map[string]*setEntry{}, map[string]uint64{}, 0
		c.epoch++
	}
	for _, k := range keys {
		c.gen[k]++
		if old := c.m[k]; old != nil {
			c.size -= len(old.ids)
			delete(c.m, k)
		}
	}
}
