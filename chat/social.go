package chat

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/ratelimit"
	"github.com/mqim/mqim/store"
)

// This file owns the social rules: friend requests and friendships, blocks,
// and who may send 1:1 to whom (chat.direct_policy). Friendships are
// symmetric; a block is one user's and refuses only the blocked user's 1:1
// sends to the blocker (the blocker may still send, and a block does not end
// a friendship). Blocking drops the pending requests between the two, and
// tells nobody.

// KindFriend is the event of a friendship change.
const KindFriend = "friend"

// Friend events.
const (
	FriendRequested = "request"
	FriendAccepted  = "accepted"
	FriendRejected  = "rejected"
	FriendRemoved   = "removed"
)

// maxFriendMessageChars bounds a friend request's message.
const maxFriendMessageChars = 200

// FriendEvent tells both users' devices about a friendship change: User is
// the other party as seen by the inbox's owner, By who acted.
type FriendEvent struct {
	Kind    string `json:"kind"`
	Event   string `json:"event"`
	User    string `json:"user"`
	By      string `json:"by"`
	Message string `json:"message,omitempty"`
}

// social is the service's social state: the send path's caches and the
// friend request limiter.
type social struct {
	blocks  *setCache // a user → the users they blocked
	friends *setCache // a user → their friends
	groups  *setCache // a user → the groups they belong to
	reqLim  *ratelimit.Keyed
	// locks serialize the changes of one pair of users on this node, so that
	// two requests crossing, or a request racing a block, end consistently.
	locks [64]sync.Mutex
}

func newSocial(st store.Store, ttl time.Duration, l config.Limits, changed func(kind string, keys []string)) *social {
	tell := func(kind string) func([]string) {
		if changed == nil {
			return nil
		}
		return func(keys []string) { changed(kind, keys) }
	}
	return &social{
		blocks: newSetCache(ttl, func(ctx context.Context, uid string) ([]string, error) {
			bs, err := st.Blocks(ctx, uid)
			ids := make([]string, len(bs))
			for i, b := range bs {
				ids[i] = b.UserID
			}
			return ids, err
		}, tell(CacheBlocks)),
		friends: newSetCache(ttl, func(ctx context.Context, uid string) ([]string, error) {
			fs, err := st.Friends(ctx, uid)
			ids := make([]string, len(fs))
			for i, f := range fs {
				ids[i] = f.UserID
			}
			return ids, err
		}, tell(CacheFriends)),
		groups: newSetCache(ttl, st.UserGroups, tell(CacheUserGroups)),
		reqLim: ratelimit.New(l.FriendRequestsPerHour/3600, l.FriendRequestBurst),
	}
}

// pair locks the changes between a and b; call the result to unlock.
func (c *social) pair(a, b string) func() {
	if a > b {
		a, b = b, a
	}
	h := fnv.New32a()
	h.Write([]byte(a + "\x00" + b))
	mu := &c.locks[h.Sum32()%uint32(len(c.locks))]
	mu.Lock()
	return mu.Unlock
}

// membershipChanged forgets the group lists of the users a committed write
// adds to or removes from a group (called where the group cache applies it).
func (c *social) membershipChanged(w *store.Write) {
	uids := make([]string, 0, len(w.AddMembers)+len(w.RemoveMembers))
	for _, m := range w.AddMembers {
		uids = append(uids, m.UserID)
	}
	uids = append(uids, w.RemoveMembers...)
	if len(uids) > 0 {
		c.groups.forget(uids...)
	}
}

// checkDirect decides whether from may send a 1:1 message to to: not when
// to blocked from, and only as chat.direct_policy allows. Every answer
// comes from caches once warm: no database round trip per message.
func (s *Service) checkDirect(ctx context.Context, from, to string) error {
	if from == to {
		return nil // notes to self
	}
	blocked, err := s.soc.blocks.has(ctx, to, from)
	if err != nil {
		return AsError(err)
	}
	if blocked {
		return errorf(CodeBlocked, "%s blocked you", to)
	}
	policy := s.cfg.DirectPolicy
	if policy == "" || policy == config.DirectAnyone {
		return nil
	}
	friends, err := s.soc.friends.has(ctx, from, to)
	if err != nil {
		return AsError(err)
	}
	if friends {
		return nil
	}
	if policy == config.DirectFriends {
		return errorf(CodeForbidden, "only friends may send 1:1 messages: send %s a friend request first", to)
	}
	shared, err := s.sharedGroup(ctx, from, to)
	if err != nil {
		return AsError(err)
	}
	if !shared {
		return errorf(CodeForbidden, "only friends or members of a common group may send 1:1 messages: send %s a friend request first", to)
	}
	return nil
}

// sharedGroup tells whether a and b are both current members of one group
// that is not dissolved. The users' group lists only propose candidates;
// the group cache (kept exact by every commit) decides.
func (s *Service) sharedGroup(ctx context.Context, a, b string) (bool, error) {
	ga, err := s.soc.groups.get(ctx, a)
	if err != nil {
		return false, err
	}
	if len(ga) == 0 {
		return false, nil
	}
	gb, err := s.soc.groups.get(ctx, b)
	if err != nil {
		return false, err
	}
	if len(gb) < len(ga) {
		ga, gb = gb, ga
	}
	for gid := range ga {
		if _, ok := gb[gid]; !ok {
			continue
		}
		g, err := s.groups.get(ctx, gid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		_, okA := g.members[a]
		_, okB := g.members[b]
		if okA && okB && !g.group.Dissolved {
			return true, nil
		}
	}
	return false, nil
}

// isFriend tells whether a and b are friends, from the cache.
func (s *Service) isFriend(ctx context.Context, a, b string) (bool, error) {
	return s.soc.friends.has(ctx, a, b)
}

// FriendRequestResult is what a friend request did.
type FriendRequestResult struct {
	// Request is the pending request (the first one, for a repeat); nil
	// when the request made the two friends.
	Request *store.FriendRequest
	// Friend is the new friendship, when the other user had asked first.
	Friend *store.Friend
	// Created: something changed (false for a repeated request).
	Created bool
}

// twoUsers checks that uid acts on another, existing user.
func (s *Service) twoUsers(ctx context.Context, uid, other string) error {
	switch {
	case !ValidID(other):
		return errorf(CodeInvalid, "invalid user id")
	case other == uid:
		return errorf(CodeInvalid, "that is yourself")
	}
	for _, u := range []string{uid, other} {
		if err := s.users.exists(ctx, u); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(CodeNotFound, "no user %s", u)
			}
			return AsError(err)
		}
	}
	return nil
}

// existingUser checks that uid exists (a service key names any id).
func (s *Service) existingUser(ctx context.Context, uid string) error {
	if !ValidID(uid) {
		return errorf(CodeInvalid, "invalid user id")
	}
	if err := s.users.exists(ctx, uid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(CodeNotFound, "no user %s", uid)
		}
		return AsError(err)
	}
	return nil
}

// RequestFriend sends a friend request from one user to another, with an
// optional message. A request to a user who already asked you accepts
// theirs; a repeat changes nothing and tells nobody. Users' requests (not
// the service key's) are rate-limited.
func (s *Service) RequestFriend(ctx context.Context, a Actor, from, to, message string) (*FriendRequestResult, error) {
	if !a.Service {
		if ok, retry := s.soc.reqLim.Allow(from); !ok {
			return nil, rateLimited("friend requests", retry)
		}
	}
	if utf8.RuneCountInString(message) > maxFriendMessageChars {
		return nil, errorf(CodeInvalid, "message longer than %d characters", maxFriendMessageChars)
	}
	if err := s.twoUsers(ctx, from, to); err != nil {
		return nil, err
	}
	defer s.soc.pair(from, to)()
	blocked, err := s.soc.blocks.has(ctx, to, from)
	if err != nil {
		return nil, AsError(err)
	}
	if blocked {
		return nil, errorf(CodeBlocked, "%s blocked you", to)
	}
	if friends, err := s.isFriend(ctx, from, to); err != nil {
		return nil, AsError(err)
	} else if friends {
		return nil, errorf(CodeConflict, "you are friends with %s already", to)
	}
	// They asked first: this is a yes.
	if _, err := s.st.FriendRequest(ctx, to, from); err == nil {
		f, err := s.befriend(ctx, from, to)
		if err != nil {
			return nil, err
		}
		return &FriendRequestResult{Friend: f, Created: true}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, AsError(err)
	}
	if old, err := s.st.FriendRequest(ctx, from, to); err == nil {
		return &FriendRequestResult{Request: old}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, AsError(err)
	}
	n, err := s.st.SocialCounts(ctx, from)
	if err != nil {
		return nil, AsError(err)
	}
	switch {
	case n.Outgoing >= s.cfg.MaxFriendRequests:
		return nil, errorf(CodeForbidden, "at most %d pending friend requests: wait for answers", s.cfg.MaxFriendRequests)
	case n.Friends >= s.cfg.MaxFriends:
		return nil, errorf(CodeForbidden, "at most %d friends", s.cfg.MaxFriends)
	}
	r := &store.FriendRequest{From: from, To: to, Message: message, CreatedAt: time.Now().UnixMilli()}
	created, err := s.st.PutFriendRequest(ctx, r)
	if err != nil {
		return nil, AsError(err)
	}
	if !created { // another node stored one meanwhile
		old, err := s.st.FriendRequest(ctx, from, to)
		if err != nil {
			return nil, AsError(err)
		}
		return &FriendRequestResult{Request: old}, nil
	}
	s.friendEvents(FriendRequested, from, to, from, message)
	return &FriendRequestResult{Request: r, Created: true}, nil
}

// befriend makes by and other friends (by acts: accepts other's request),
// within the caps, and tells both. The pair lock is held.
func (s *Service) befriend(ctx context.Context, by, other string) (*store.Friend, error) {
	for _, u := range []string{by, other} {
		n, err := s.st.SocialCounts(ctx, u)
		if err != nil {
			return nil, AsError(err)
		}
		if n.Friends >= s.cfg.MaxFriends {
			if u == by {
				return nil, errorf(CodeForbidden, "at most %d friends", s.cfg.MaxFriends)
			}
			return nil, errorf(CodeForbidden, "%s has the most friends allowed (%d)", u, s.cfg.MaxFriends)
		}
	}
	since := time.Now().UnixMilli()
	err := s.st.AddFriends(ctx, by, other, since)
	s.soc.friends.forget(by, other)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, errorf(CodeConflict, "you are friends with %s already", other)
		}
		return nil, AsError(err)
	}
	s.friendEvents(FriendAccepted, by, other, by, "")
	return &store.Friend{UserID: other, Since: since}, nil
}

// friendEvents tells both users' devices: each sees the other as user. The
// Observer gets a's (the actor's) event, which names both users (user and
// by).
func (s *Service) friendEvents(event, a, b, by, message string) {
	ev := mustJSON(FriendEvent{Kind: KindFriend, Event: event, User: b, By: by, Message: message})
	s.observe(KindFriend+"."+event, ev)
	s.send(UserTopic(a), ev, 1)
	s.send(UserTopic(b), mustJSON(FriendEvent{Kind: KindFriend, Event: event, User: a, By: by, Message: message}), 1)
}

// FriendRequests lists the requests pending to and from uid, newest first.
func (s *Service) FriendRequests(ctx context.Context, uid string) (incoming, outgoing []store.FriendRequest, err error) {
	if err := s.existingUser(ctx, uid); err != nil {
		return nil, nil, err
	}
	in, out, err := s.st.FriendRequests(ctx, uid)
	if err != nil {
		return nil, nil, AsError(err)
	}
	return in, out, nil
}

// AnswerFriendRequest accepts (both become friends) or rejects (the
// request is removed) the request from one user to uid. It returns the new
// friendship when accepted.
func (s *Service) AnswerFriendRequest(ctx context.Context, uid, from string, accept bool) (*store.Friend, error) {
	if err := s.twoUsers(ctx, uid, from); err != nil {
		return nil, err
	}
	defer s.soc.pair(uid, from)()
	if _, err := s.st.FriendRequest(ctx, from, uid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(CodeNotFound, "no friend request from %s", from)
		}
		return nil, AsError(err)
	}
	if accept {
		return s.befriend(ctx, uid, from)
	}
	if err := s.st.DeleteFriendRequest(ctx, from, uid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(CodeNotFound, "no friend request from %s", from)
		}
		return nil, AsError(err)
	}
	s.friendEvents(FriendRejected, uid, from, uid, "")
	return nil, nil
}

// Friends lists uid's friends by user id.
func (s *Service) Friends(ctx context.Context, uid string) ([]store.Friend, error) {
	if err := s.existingUser(ctx, uid); err != nil {
		return nil, err
	}
	fs, err := s.st.Friends(ctx, uid)
	if err != nil {
		return nil, AsError(err)
	}
	return fs, nil
}

// Unfriend ends uid's friendship with other; not_found if they are not
// friends.
func (s *Service) Unfriend(ctx context.Context, uid, other string) error {
	if err := s.twoUsers(ctx, uid, other); err != nil {
		return err
	}
	defer s.soc.pair(uid, other)()
	err := s.st.RemoveFriends(ctx, uid, other)
	s.soc.friends.forget(uid, other)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(CodeNotFound, "you are not friends with %s", other)
		}
		return AsError(err)
	}
	s.friendEvents(FriendRemoved, uid, other, uid, "")
	return nil
}

// Block makes uid block other (idempotent): other's 1:1 sends and friend
// requests to uid are refused as blocked from now on, and the pending
// requests between them are dropped. Nobody is told.
func (s *Service) Block(ctx context.Context, uid, other string) error {
	if err := s.twoUsers(ctx, uid, other); err != nil {
		return err
	}
	defer s.soc.pair(uid, other)()
	already, err := s.soc.blocks.has(ctx, uid, other)
	if err != nil {
		return AsError(err)
	}
	if !already {
		n, err := s.st.SocialCounts(ctx, uid)
		if err != nil {
			return AsError(err)
		}
		if n.Blocks >= s.cfg.MaxBlocks {
			return errorf(CodeForbidden, "at most %d blocked users", s.cfg.MaxBlocks)
		}
	}
	_, err = s.st.PutBlock(ctx, uid, other, time.Now().UnixMilli())
	s.soc.blocks.forget(uid)
	if err != nil {
		return AsError(err)
	}
	return nil
}

// Unblock lifts uid's block of other; not_found if there is none.
func (s *Service) Unblock(ctx context.Context, uid, other string) error {
	if err := s.twoUsers(ctx, uid, other); err != nil {
		return err
	}
	defer s.soc.pair(uid, other)()
	err := s.st.DeleteBlock(ctx, uid, other)
	s.soc.blocks.forget(uid)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(CodeNotFound, "%s is not blocked", other)
	}
	if err != nil {
		return AsError(err)
	}
	return nil
}

// Blocks lists the users uid blocked, by user id.
func (s *Service) Blocks(ctx context.Context, uid string) ([]store.Block, error) {
	if err := s.existingUser(ctx, uid); err != nil {
		return nil, err
	}
	bs, err := s.st.Blocks(ctx, uid)
	if err != nil {
		return nil, AsError(err)
	}
	return bs, nil
}
