package chat

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqim/mqim/store"
)

// Group settings, ownership, dissolution, join requests and member paging
// (docs/http-api.md, "Groups").

// Limits of group fields and requests.
const (
	MaxGroupName       = 100  // characters
	MaxGroupAvatar     = 1024 // bytes (the column's size)
	MaxGroupNotice     = 1000 // characters
	MaxJoinMessage     = 200  // characters
	MaxPendingRequests = 1000 // pending join requests per group
	DefaultMemberPage  = 100
	MaxMemberPage      = 500
)

// GroupChange changes a group's settings; nil fields stay. An Ext of JSON
// null clears it.
type GroupChange struct {
	Name       *string
	Avatar     *string
	Notice     *string
	MuteAll    *bool
	JoinPolicy *string
	Ext        *json.RawMessage
}

func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errorf(CodeInvalid, "name is required")
	case utf8.RuneCountInString(name) > MaxGroupName:
		return errorf(CodeInvalid, "name longer than %d characters", MaxGroupName)
	}
	return nil
}

func checkAvatar(avatar string) error {
	if len(avatar) > MaxGroupAvatar {
		return errorf(CodeInvalid, "avatar longer than %d bytes", MaxGroupAvatar)
	}
	return nil
}

func checkPolicy(p string) error {
	if p != JoinOpen && p != JoinApproval && p != JoinInvite {
		return errorf(CodeInvalid, "join_policy must be open, approval or invite")
	}
	return nil
}

// UpdateGroup changes a group's settings: the owner, admins and the service
// may. Fields are validated as at creation (notice: at most 1,000
// characters). The change is stored with an "updated" system message and
// announced by an "updated" group event whose data holds the changed fields
// only. A change that changes nothing stores and sends nothing. It returns
// the group as it now is, with its members.
func (s *Service) UpdateGroup(ctx context.Context, a Actor, gid string, c GroupChange) (*store.Group, []store.Member, error) {
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return nil, nil, err
	}
	if !a.Service && !isAdmin(g.members[a.UserID].Role) {
		return nil, nil, errorf(CodeForbidden, "only the owner and admins change %s", gid)
	}
	next := g.group
	data := map[string]any{}
	if c.Name != nil {
		if err := checkName(*c.Name); err != nil {
			return nil, nil, err
		}
		if *c.Name != next.Name {
			next.Name, data["name"] = *c.Name, *c.Name
		}
	}
	if c.Avatar != nil {
		if err := checkAvatar(*c.Avatar); err != nil {
			return nil, nil, err
		}
		if *c.Avatar != next.Avatar {
			next.Avatar, data["avatar"] = *c.Avatar, *c.Avatar
		}
	}
	if c.Notice != nil {
		if utf8.RuneCountInString(*c.Notice) > MaxGroupNotice {
			return nil, nil, errorf(CodeInvalid, "notice longer than %d characters", MaxGroupNotice)
		}
		if *c.Notice != next.Notice {
			next.Notice, data["notice"] = *c.Notice, *c.Notice
		}
	}
	if c.MuteAll != nil && *c.MuteAll != next.MuteAll {
		next.MuteAll, data["mute_all"] = *c.MuteAll, *c.MuteAll
	}
	if c.JoinPolicy != nil {
		if err := checkPolicy(*c.JoinPolicy); err != nil {
			return nil, nil, err
		}
		if *c.JoinPolicy != next.JoinPolicy {
			next.JoinPolicy, data["join_policy"] = *c.JoinPolicy, *c.JoinPolicy
		}
	}
	if c.Ext != nil {
		if len(*c.Ext) > s.cfg.MaxExt {
			return nil, nil, errorf(CodeTooLarge, "ext larger than %d bytes", s.cfg.MaxExt)
		}
		ext, err := validateExt(*c.Ext)
		if err != nil {
			return nil, nil, err
		}
		old, _ := validateExt(json.RawMessage(next.Ext))
		if string(ext) != string(old) {
			next.Ext = store.JSON(ext)
			if ext == nil {
				data["ext"] = nil
			} else {
				data["ext"] = json.RawMessage(ext)
			}
		}
	}
	if len(data) == 0 {
		return s.groupNow(ctx, &g.group)
	}
	next.UpdatedAt = time.Now().UnixMilli()
	w := s.systemWrite(gid, a, g.reader(a), systemBody{Event: "updated", By: actorName(a), Data: data})
	w.UpdateGroup = &next
	if _, err := s.submitPending(ctx, &pending{w: w, info: &CommitInfo{Group: &next},
		events: []outEvent{{GroupTopic(gid), mustJSON(GroupEvent{Kind: "group", Group: gid, Event: "updated", By: actorName(a), Data: data})}},
	}); err != nil {
		return nil, nil, err
	}
	return s.groupNow(ctx, &next)
}

func (s *Service) groupNow(ctx context.Context, g *store.Group) (*store.Group, []store.Member, error) {
	ms, err := s.st.Members(ctx, g.ID)
	if err != nil {
		return nil, nil, AsError(err)
	}
	return g, ms, nil
}

// Transfer makes member uid the owner of gid; the owner or the service may.
// The old owner becomes an admin. Stored with a "transferred" system
// message and announced by a "transferred" event (user: the new owner, by:
// the old one). Transferring to the owner changes nothing.
func (s *Service) Transfer(ctx context.Context, a Actor, gid, uid string) (*store.Group, []store.Member, error) {
	if !ValidID(uid) {
		return nil, nil, errorf(CodeInvalid, "invalid user id")
	}
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return nil, nil, err
	}
	oldOwner := g.group.Owner
	if !a.Service && a.UserID != oldOwner {
		return nil, nil, errorf(CodeForbidden, "only the owner transfers %s", gid)
	}
	target, ok := g.members[uid]
	if !ok {
		return nil, nil, errorf(CodeNotFound, "%s is not a member of %s", uid, gid)
	}
	if uid == oldOwner {
		return s.groupNow(ctx, &g.group)
	}
	next := g.group
	next.Owner, next.UpdatedAt = uid, time.Now().UnixMilli()
	old := g.members[oldOwner]
	old.Role = store.RoleAdmin
	target.Role, target.MutedUntil = store.RoleOwner, 0 // the owner is never muted
	w := s.systemWrite(gid, a, g.reader(a), systemBody{Event: "transferred", By: oldOwner, Users: []string{uid}})
	w.UpdateGroup, w.UpdateMembers = &next, []store.Member{old, target}
	if _, err := s.submitPending(ctx, &pending{w: w, info: &CommitInfo{Group: &next},
		events: []outEvent{{GroupTopic(gid), mustJSON(GroupEvent{Kind: "group", Group: gid, Event: "transferred", User: uid, By: oldOwner})}},
	}); err != nil {
		return nil, nil, err
	}
	return s.groupNow(ctx, &next)
}

// Dissolve ends a group; the owner or the service may. One commit stores
// the "dissolved" system message, marks the group dissolved and makes
// every member a former member at that message (history stays readable up
// to it, as after a leave) and drops pending join requests. The message
// and the "dissolved" event go to the group topic, and the event to every
// member's inbox, before the members' subscriptions to the group end.
// Afterwards the group is not_found for everything but history.
func (s *Service) Dissolve(ctx context.Context, a Actor, gid string) error {
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return err
	}
	if !a.Service && a.UserID != g.group.Owner {
		return errorf(CodeForbidden, "only the owner dissolves %s", gid)
	}
	uids := make([]string, 0, len(g.members))
	for uid := range g.members {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	w := s.systemWrite(gid, a, "", systemBody{Event: "dissolved", By: actorName(a)})
	w.DissolveGroup = true
	ev := mustJSON(GroupEvent{Kind: "group", Group: gid, Event: "dissolved", By: actorName(a)})
	events := []outEvent{{GroupTopic(gid), ev}}
	for _, uid := range uids {
		events = append(events, outEvent{UserTopic(uid), ev})
	}
	_, err = s.submitPending(ctx, &pending{w: w, info: &CommitInfo{Group: &g.group}, events: events,
		delivered: func() {
			s.groups.finishDissolve(gid)
			s.subscribe(gid, nil, uids)
		},
	})
	return err
}

// JoinResult is what a join asked for became: Status "joined" with the
// membership, or "requested".
type JoinResult struct {
	Status string
	Member *store.Member
}

// Join lets uid join gid by its policy: "open" joins at once (a "joined"
// system message and event); "approval" stores a request (message: at
// most 200 characters) and tells the owner's and admins' inboxes with a
// "requested" event, once (a repeated request changes nothing; at most
// 1,000 pending per group); "invite" is forbidden. A member joining again
// is a conflict.
func (s *Service) Join(ctx context.Context, uid, gid, message string) (*JoinResult, error) {
	if !ValidID(gid) {
		return nil, errorf(CodeInvalid, "invalid group id")
	}
	if utf8.RuneCountInString(message) > MaxJoinMessage {
		return nil, errorf(CodeInvalid, "message longer than %d characters", MaxJoinMessage)
	}
	if err := s.usersExist(ctx, []string{uid}); err != nil {
		return nil, err
	}
	g, err := s.groups.get(ctx, gid)
	if err != nil {
		return nil, AsError(err)
	}
	if g.group.Dissolved {
		return nil, errorf(CodeNotFound, "group %s was dissolved", gid)
	}
	if _, ok := g.members[uid]; ok {
		return nil, errorf(CodeConflict, "%s is already a member of %s", uid, gid)
	}
	switch g.group.JoinPolicy {
	case JoinOpen:
		m, err := s.admit(ctx, Actor{UserID: uid}, g, uid)
		if err != nil {
			return nil, err
		}
		return &JoinResult{Status: "joined", Member: m}, nil
	case JoinApproval:
		created, err := s.st.PutJoinRequest(ctx, &store.JoinRequest{GroupID: gid, UserID: uid, Message: message,
			CreatedAt: time.Now().UnixMilli()}, MaxPendingRequests)
		if errors.Is(err, store.ErrLimit) {
			return nil, errorf(CodeForbidden, "%s has %d pending join requests, the most a group may have", gid, MaxPendingRequests)
		}
		if err != nil {
			return nil, AsError(err)
		}
		if created {
			ev := GroupEvent{Kind: "group", Group: gid, Event: "requested", User: uid}
			if message != "" {
				ev.Data = map[string]any{"message": message}
			}
			payload := mustJSON(ev)
			s.observe("group.requested", payload)
			for _, m := range g.members {
				if isAdmin(m.Role) {
					s.send(UserTopic(m.UserID), payload, 1)
				}
			}
		}
		return &JoinResult{Status: "requested"}, nil
	default:
		return nil, errorf(CodeForbidden, "%s is joined by invitation only", gid)
	}
}

// admit makes uid a member of g on the actor's behalf, with the "joined"
// system message and event, after checking both caps.
func (s *Service) admit(ctx context.Context, a Actor, g *groupEntry, uid string) (*store.Member, error) {
	gid := g.group.ID
	if len(g.members)+1 > s.cfg.MaxGroupMember {
		return nil, errorf(CodeInvalid, "at most %d members", s.cfg.MaxGroupMember)
	}
	if err := s.checkGroupsPerUser(ctx, []string{uid}); err != nil {
		return nil, err
	}
	m := store.Member{GroupID: gid, UserID: uid, Role: store.RoleMember}
	w := s.systemWrite(gid, a, g.reader(a), systemBody{Event: "joined", By: actorName(a), Users: []string{uid}})
	w.AddMembers = []store.Member{m}
	p, err := s.submitPending(ctx, &pending{w: w,
		after:  func() { s.subscribe(gid, []string{uid}, nil) },
		info:   &CommitInfo{Group: &g.group},
		events: []outEvent{{GroupTopic(gid), mustJSON(GroupEvent{Kind: "group", Group: gid, Event: "joined", User: uid, By: actorName(a)})}},
	})
	if err != nil {
		if AsError(err).Code == CodeConflict {
			s.groups.forget(gid)
			return nil, errorf(CodeConflict, "%s is already a member of %s", uid, gid)
		}
		return nil, err
	}
	m.JoinSeq, m.JoinedAt = p.w.Msg.Seq, p.w.Msg.TS
	return &m, nil
}

// checkGroupsPerUser refuses, naming the user, when one of uids already
// belongs to chat.max_groups_per_user groups.
func (s *Service) checkGroupsPerUser(ctx context.Context, uids []string) error {
	if s.cfg.MaxGroupsPerUser <= 0 || len(uids) == 0 {
		return nil
	}
	n, err := s.st.GroupCounts(ctx, uids)
	if err != nil {
		return AsError(err)
	}
	for _, uid := range uids {
		if n[uid] >= s.cfg.MaxGroupsPerUser {
			return errorf(CodeForbidden, "%s is in %d groups, the most a user may be in", uid, s.cfg.MaxGroupsPerUser)
		}
	}
	return nil
}

// JoinRequests lists gid's pending join requests, oldest first, to the
// owner, admins and the service.
func (s *Service) JoinRequests(ctx context.Context, a Actor, gid string) ([]store.JoinRequest, error) {
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return nil, err
	}
	if !a.Service && !isAdmin(g.members[a.UserID].Role) {
		return nil, errorf(CodeForbidden, "only the owner and admins see the requests to %s", gid)
	}
	rs, err := s.st.JoinRequests(ctx, gid)
	if err != nil {
		return nil, AsError(err)
	}
	return rs, nil
}

// AnswerRequest approves or rejects uid's request to join gid (owner,
// admins, service). Approval joins uid (a "joined" system message and
// event; the request ends in the same commit) and returns the membership;
// rejection deletes the request and sends a "rejected" event to uid's
// inbox, returning nil. No pending request is not_found.
func (s *Service) AnswerRequest(ctx context.Context, a Actor, gid, uid string, approve bool) (*store.Member, error) {
	if !ValidID(uid) {
		return nil, errorf(CodeInvalid, "invalid user id")
	}
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return nil, err
	}
	if !a.Service && !isAdmin(g.members[a.UserID].Role) {
		return nil, errorf(CodeForbidden, "only the owner and admins answer requests to %s", gid)
	}
	if _, err := s.st.JoinRequest(ctx, gid, uid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(CodeNotFound, "no pending request of %s to %s", uid, gid)
		}
		return nil, AsError(err)
	}
	if approve {
		if _, ok := g.members[uid]; ok {
			_ = s.st.DeleteJoinRequest(ctx, gid, uid)
			return nil, errorf(CodeConflict, "%s is already a member of %s", uid, gid)
		}
		return s.admit(ctx, a, g, uid)
	}
	if err := s.st.DeleteJoinRequest(ctx, gid, uid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(CodeNotFound, "no pending request of %s to %s", uid, gid)
		}
		return nil, AsError(err)
	}
	ev := mustJSON(GroupEvent{Kind: "group", Group: gid, Event: "rejected", User: uid, By: actorName(a)})
	s.observe("group.rejected", ev)
	s.send(UserTopic(uid), ev, 1)
	return nil, nil
}

// MemberPage pages a group's members, visible to whom GET group is: the
// owner, then admins, then members, each by join time then user id.
// Limit is 1 to 500 (0: 100); cursor is "" or the next value returned
// by the page before ("" when no more remain).
func (s *Service) MemberPage(ctx context.Context, a Actor, gid string, limit int, cursor string) ([]store.Member, string, error) {
	if limit == 0 {
		limit = DefaultMemberPage
	}
	if limit < 1 || limit > MaxMemberPage {
		return nil, "", errorf(CodeInvalid, "limit must be 1 to %d", MaxMemberPage)
	}
	var after *memberKey
	if cursor != "" {
		k, ok := parseMemberCursor(cursor)
		if !ok {
			return nil, "", errorf(CodeInvalid, "invalid cursor")
		}
		after = &k
	}
	_, ms, err := s.Group(ctx, a, gid)
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(ms, func(x, y store.Member) int { return keyOf(x).cmp(keyOf(y)) })
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(ms, *after, func(m store.Member, k memberKey) int {
			if c := keyOf(m).cmp(k); c != 0 {
				return c
			}
			return -1 // the cursor's own member was on the page before
		})
	}
	ms = ms[start:]
	if len(ms) <= limit {
		return ms, "", nil
	}
	page := ms[:limit]
	return page, keyOf(page[limit-1]).cursor(), nil
}

// memberKey is a member's place in the member order.
type memberKey struct {
	rank     int
	joinedAt int64
	user     string
}

func roleRank(role string) int {
	switch role {
	case store.RoleOwner:
		return 0
	case store.RoleAdmin:
		return 1
	}
	return 2
}

func keyOf(m store.Member) memberKey { return memberKey{roleRank(m.Role), m.JoinedAt, m.UserID} }

func (k memberKey) cmp(o memberKey) int {
	switch {
	case k.rank != o.rank:
		return k.rank - o.rank
	case k.joinedAt < o.joinedAt:
		return -1
	case k.joinedAt > o.joinedAt:
		return 1
	}
	return strings.Compare(k.user, o.user)
}

func (k memberKey) cursor() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d:%s", k.rank, k.joinedAt, k.user))
}

func parseMemberCursor(c string) (memberKey, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return memberKey{}, false
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 {
		return memberKey{}, false
	}
	rank, err1 := strconv.Atoi(parts[0])
	at, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || rank < 0 || rank > 2 || !ValidID(parts[2]) {
		return memberKey{}, false
	}
	return memberKey{rank, at, parts[2]}, true
}
