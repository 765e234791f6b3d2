package chat

import (
	"context"
	"sync"
	"time"

	"github.com/mqim/mqim/store"
)

// groupEntry is an immutable snapshot of a group and its members; changes
// replace the entry, so readers never lock beyond the map lookup.
type groupEntry struct {
	group   store.Group
	members map[string]store.Member
	loaded  time.Time
	// draining: the group is dissolved, and its members are kept until the
	// dissolve's events are delivered to them (finishDissolve).
	draining bool
}

// groupCache answers membership questions without a database round trip.
// The MQTT ACL asks once per delivered message and recipient, so this is on
// the hot path. Changes made through this process are applied at once;
// entries also expire after ttl so that changes made by other nodes show.
type groupCache struct {
	st      store.Store
	ttl     time.Duration
	changed func(keys []string)
	mu      sync.RWMutex
	m       map[string]*groupEntry
	// gen counts the changes applied to each group; a load that raced a
	// change (the counter moved while it read the store) is not cached, or a
	// kicked member could come back for a whole TTL.
	gen map[string]uint64
}

// newGroupCache returns a cache of groups; changed, if not nil, is told
// of every group a change made here touched (the other nodes of a cluster
// drop their copies).
func newGroupCache(st store.Store, ttl time.Duration, changed func(keys []string)) *groupCache {
	return &groupCache{st: st, ttl: ttl, changed: changed, m: map[string]*groupEntry{}, gen: map[string]uint64{}}
}

func (c *groupCache) get(ctx context.Context, gid string) (*groupEntry, error) {
	c.mu.RLock()
	e := c.m[gid]
	c.mu.RUnlock()
	if e != nil && time.Since(e.loaded) < c.ttl {
		return e, nil
	}
	c.mu.RLock()
	gen := c.gen[gid]
	c.mu.RUnlock()
	g, err := c.st.Group(ctx, gid)
	if err != nil {
		return nil, err
	}
	ms, err := c.st.Members(ctx, gid)
	if err != nil {
		return nil, err
	}
	e = &groupEntry{group: *g, members: make(map[string]store.Member, len(ms)), loaded: time.Now()}
	for _, m := range ms {
		e.members[m.UserID] = m
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[gid] != gen {
		// Changed while we read: what we read may predate the change. Use it
		// for this one answer only; the next get reads the committed state.
		return e, nil
	}
	if len(c.m) > 50_000 || len(c.gen) > 200_000 {
		c.m = map[string]*groupEntry{}
		c.gen = map[string]uint64{}
	}
	c.m[gid] = e
	return e, nil
}

// apply records a committed membership change.
func (c *groupCache) apply(gid string, w *store.Write) {
	if c.changed != nil {
		defer c.changed([]string{gid})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[gid]++
	old := c.m[gid]
	if old == nil && w.NewGroup == nil {
		return // not cached: the next get loads the committed state
	}
	e := &groupEntry{loaded: time.Now(), members: map[string]store.Member{}}
	if w.NewGroup != nil {
		e.group = *w.NewGroup
	} else {
		e.group, e.loaded = old.group, old.loaded
		for k, v := range old.members {
			e.members[k] = v
		}
	}
	for _, m := range w.AddMembers {
		m.GroupID, m.JoinSeq, m.JoinedAt = gid, w.Msg.Seq, w.Msg.TS
		e.members[m.UserID] = m
	}
	for _, m := range w.UpdateMembers {
		if old, ok := e.members[m.UserID]; ok {
			old.Role, old.MutedUntil = m.Role, m.MutedUntil
			e.members[m.UserID] = old
		}
	}
	for _, uid := range w.RemoveMembers {
		delete(e.members, uid)
	}
	if g := w.UpdateGroup; g != nil {
		e.group.Name, e.group.Avatar, e.group.Notice, e.group.Owner = g.Name, g.Avatar, g.Notice, g.Owner
		e.group.JoinPolicy, e.group.MuteAll, e.group.Ext, e.group.UpdatedAt = g.JoinPolicy, g.MuteAll, g.Ext, g.UpdatedAt
	}
	if w.DissolveGroup {
		e.group.Dissolved, e.group.UpdatedAt, e.draining = true, w.Msg.TS, true
	}
	c.m[gid] = e
}

// finishDissolve drops a dissolved group's members once its last events
// were delivered.
func (c *groupCache) finishDissolve(gid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[gid]++
	if old := c.m[gid]; old != nil {
		c.m[gid] = &groupEntry{group: old.group, members: map[string]store.Member{}, loaded: old.loaded}
	}
}

// forget drops a group after a change made here, so the next get reloads
// it, and tells changed.
func (c *groupCache) forget(gid string) {
	c.drop(gid)
	if c.changed != nil {
		c.changed([]string{gid})
	}
}

// reset drops every group.
func (c *groupCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for gid := range c.m {
		c.gen[gid]++
	}
	c.m = map[string]*groupEntry{}
}

// drop drops a group so the next get reloads it (a change made here, or
// one another node made).
func (c *groupCache) drop(gid string) {
	c.mu.Lock()
	c.gen[gid]++
	delete(c.m, gid)
	c.mu.Unlock()
}

// userCache remembers which user ids exist, so that a 1:1 send does not
// look its recipient up every time.
type userCache struct {
	st  store.Store
	ttl time.Duration
	mu  sync.RWMutex
	m   map[string]time.Time
}

func newUserCache(st store.Store, ttl time.Duration) *userCache {
	return &userCache{st: st, ttl: ttl, m: map[string]time.Time{}}
}

func (c *userCache) exists(ctx context.Context, uid string) error {
	c.mu.RLock()
	t, ok := c.m[uid]
	c.mu.RUnlock()
	if ok && time.Since(t) < c.ttl {
		return nil
	}
	if _, err := c.st.User(ctx, uid); err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.m) > 200_000 {
		c.m = map[string]time.Time{}
	}
	c.m[uid] = time.Now()
	c.mu.Unlock()
	return nil
}
