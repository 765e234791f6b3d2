package chat

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/mqim/mqim/store"
)

// Actor is who asks: a user, or the product backend (service key).
type Actor struct {
	UserID  string
	Service bool
}

// Join policies.
const (
	JoinOpen     = "open"
	JoinApproval = "approval"
	JoinInvite   = "invite"
)

// NewGroup describes a group to create.
type NewGroup struct {
	ID         string
	Name       string
	Avatar     string
	Owner      string
	Members    []string
	JoinPolicy string
	Ext        json.RawMessage
}

// systemBody is the body of a stored system message.
type systemBody struct {
	Event string   `json:"event"`
	By    string   `json:"by,omitempty"`
	Users []string `json:"users,omitempty"`
	Data  any      `json:"data,omitempty"`
}

// CreateGroup creates a group with its owner and first members, stored with
// the "created" system message in one commit, so the members start with
// read_seq at that message (no unread). Live sessions of the members are
// subscribed before the event is delivered.
func (s *Service) CreateGroup(ctx context.Context, a Actor, ng NewGroup) (*store.Group, []store.Member, error) {
	if ng.Owner == "" {
		ng.Owner = a.UserID
	}
	if !a.Service && ng.Owner != a.UserID {
		return nil, nil, errorf(CodeForbidden, "only the service key may create a group for someone else")
	}
	if !a.Service {
		if ok, retry := s.groupLim.Allow(a.UserID); !ok {
			return nil, nil, rateLimited("creating groups", retry)
		}
		s.charged(LimitGroups, a.UserID)
	}
	ng.ID = idOrNew(ng.ID)
	switch {
	case !ValidID(ng.ID):
		return nil, nil, errorf(CodeInvalid, "invalid group id")
	case !ValidID(ng.Owner):
		return nil, nil, errorf(CodeInvalid, "owner is required and must be a user id")
	case checkName(ng.Name) != nil:
		return nil, nil, checkName(ng.Name)
	case checkAvatar(ng.Avatar) != nil: // the column's size (MySQL refuses more)
		return nil, nil, checkAvatar(ng.Avatar)
	case len(ng.Ext) > s.cfg.MaxExt:
		return nil, nil, errorf(CodeTooLarge, "ext larger than %d bytes", s.cfg.MaxExt)
	}
	ext, err := validateExt(ng.Ext)
	if err != nil {
		return nil, nil, err
	}
	ng.Ext = ext
	if ng.JoinPolicy == "" {
		ng.JoinPolicy = JoinInvite
	}
	if err := checkPolicy(ng.JoinPolicy); err != nil {
		return nil, nil, err
	}
	uids := dedupe(append([]string{ng.Owner}, ng.Members...))
	if len(uids) > s.cfg.MaxGroupMember {
		return nil, nil, errorf(CodeInvalid, "at most %d members", s.cfg.MaxGroupMember)
	}
	if err := s.usersExist(ctx, uids); err != nil {
		return nil, nil, err
	}
	if err := s.checkGroupsPerUser(ctx, uids); err != nil {
		return nil, nil, err
	}
	if _, err := s.st.Group(ctx, ng.ID); err == nil {
		return nil, nil, errorf(CodeConflict, "group %s exists", ng.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, AsError(err)
	}
	now := time.Now().UnixMilli()
	g := &store.Group{ID: ng.ID, Name: ng.Name, Avatar: ng.Avatar, Owner: ng.Owner, JoinPolicy: ng.JoinPolicy,
		Ext: store.JSON(ng.Ext), CreatedAt: now, UpdatedAt: now}
	members := make([]store.Member, len(uids))
	for i, uid := range uids {
		role := store.RoleMember
		if uid == ng.Owner {
			role = store.RoleOwner
		}
		members[i] = store.Member{GroupID: g.ID, UserID: uid, Role: role}
	}
	w := s.systemWrite(g.ID, a, "", systemBody{Event: "created", By: actorName(a), Users: uids})
	w.NewGroup, w.AddMembers = g, members
	snapshot := make(map[string]store.Member, len(members))
	for _, m := range members {
		snapshot[m.UserID] = m
	}
	p, err := s.submitPending(ctx, &pending{w: w,
		after: func() { s.subscribe(g.ID, uids, nil) },
		info:  &CommitInfo{Group: g, Members: snapshot},
		events: []outEvent{{GroupTopic(g.ID), mustJSON(GroupEvent{Kind: "group", Group: g.ID, Event: "created", By: actorName(a),
			Data: map[string]any{"name": g.Name, "owner": g.Owner, "members": uids}})}},
	})
	if err != nil {
		if e := AsError(err); e.Code == CodeConflict {
			return nil, nil, errorf(CodeConflict, "group %s exists", ng.ID)
		}
		return nil, nil, err
	}
	for i := range members {
		members[i].JoinSeq, members[i].JoinedAt = p.w.Msg.Seq, p.w.Msg.TS
	}
	return g, members, nil
}

// AddMembers adds users to a group. Owners and admins may always add; other
// members may invite unless the group's policy is "approval". Users already
// in the group are skipped. It returns the users actually added.
func (s *Service) AddMembers(ctx context.Context, a Actor, gid string, uids []string) ([]string, error) {
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return nil, err
	}
	if !a.Service {
		me := g.members[a.UserID]
		if !isAdmin(me.Role) && g.group.JoinPolicy == JoinApproval {
			return nil, errorf(CodeForbidden, "only the owner and admins add members to %s", gid)
		}
	}
	if len(uids) == 0 {
		return nil, errorf(CodeInvalid, "user_ids is required")
	}
	var add []string
	for _, uid := range dedupe(uids) {
		if !ValidID(uid) {
			return nil, errorf(CodeInvalid, "invalid user id %q", uid)
		}
		if _, ok := g.members[uid]; !ok {
			add = append(add, uid)
		}
	}
	if len(g.members)+len(add) > s.cfg.MaxGroupMember {
		return nil, errorf(CodeInvalid, "at most %d members", s.cfg.MaxGroupMember)
	}
	if err := s.usersExist(ctx, add); err != nil {
		return nil, err
	}
	if err := s.checkGroupsPerUser(ctx, add); err != nil {
		return nil, err
	}
	if len(add) == 0 {
		return []string{}, nil
	}
	members := make([]store.Member, len(add))
	for i, uid := range add {
		members[i] = store.Member{GroupID: gid, UserID: uid, Role: store.RoleMember}
	}
	w := s.systemWrite(gid, a, g.reader(a), systemBody{Event: "joined", By: actorName(a), Users: add})
	w.AddMembers = members
	_, err = s.submitPending(ctx, &pending{w: w,
		after: func() { s.subscribe(gid, add, nil) },
		info:  &CommitInfo{Group: &g.group},
		events: eventsForEach(add, func(uid string) outEvent {
			return outEvent{GroupTopic(gid), mustJSON(GroupEvent{Kind: "group", Group: gid, Event: "joined", User: uid, By: actorName(a)})}
		}),
	})
	if err != nil {
		if AsError(err).Code == CodeConflict {
			s.groups.forget(gid) // someone else added them meanwhile
		}
		return nil, err
	}
	return add, nil
}

// RemoveMember kicks uid out of gid, or lets a member leave when uid is the
// actor. The owner cannot leave (transfer first) and cannot be kicked;
// admins cannot kick admins.
func (s *Service) RemoveMember(ctx context.Context, a Actor, gid, uid string) error {
	if !ValidID(uid) {
		return errorf(CodeInvalid, "invalid user id")
	}
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return err
	}
	target, ok := g.members[uid]
	if !ok {
		return errorf(CodeNotFound, "%s is not a member of %s", uid, gid)
	}
	event := "kicked"
	if !a.Service && a.UserID == uid {
		event = "left"
	}
	if target.Role == store.RoleOwner {
		return errorf(CodeForbidden, "the owner cannot leave or be removed; transfer the group first")
	}
	if event == "kicked" && !a.Service {
		me := g.members[a.UserID]
		if !isAdmin(me.Role) || (me.Role == store.RoleAdmin && target.Role == store.RoleAdmin) {
			return errorf(CodeForbidden, "not allowed to remove %s", uid)
		}
	}
	reader := g.reader(a)
	if reader == uid {
		reader = "" // the leaver's position is set by the leave itself
	}
	w := s.systemWrite(gid, a, reader, systemBody{Event: event, By: actorName(a), Users: []string{uid}})
	w.RemoveMembers = []string{uid}
	ev := mustJSON(GroupEvent{Kind: "group", Group: gid, Event: event, User: uid, By: actorName(a)})
	_, err = s.submitPending(ctx, &pending{w: w,
		after: func() { s.subscribe(gid, nil, []string{uid}) },
		info:  &CommitInfo{Group: &g.group},
		// The one who left is no longer on the group topic: tell them too.
		events: []outEvent{{GroupTopic(gid), ev}, {UserTopic(uid), ev}},
	})
	return err
}

// Group returns a group and its members to a member, the service, or anyone
// when the group is open.
func (s *Service) Group(ctx context.Context, a Actor, gid string) (*store.Group, []store.Member, error) {
	if !ValidID(gid) {
		return nil, nil, errorf(CodeInvalid, "invalid group id")
	}
	e, err := s.groups.get(ctx, gid)
	if err != nil {
		return nil, nil, AsError(err)
	}
	if e.group.Dissolved {
		return nil, nil, errorf(CodeNotFound, "group %s was dissolved", gid)
	}
	if _, ok := e.members[a.UserID]; !ok && !a.Service && e.group.JoinPolicy != JoinOpen {
		return nil, nil, errorf(CodeForbidden, "not a member of %s", gid)
	}
	ms, err := s.st.Members(ctx, gid)
	if err != nil {
		return nil, nil, AsError(err)
	}
	g := e.group
	return &g, ms, nil
}

// groupFor loads a live group and checks that the actor is a member (or the
// service).
func (s *Service) groupFor(ctx context.Context, a Actor, gid string) (*groupEntry, error) {
	if !ValidID(gid) {
		return nil, errorf(CodeInvalid, "invalid group id")
	}
	g, err := s.groups.get(ctx, gid)
	if err != nil {
		return nil, AsError(err)
	}
	if g.group.Dissolved {
		return nil, errorf(CodeNotFound, "group %s was dissolved", gid)
	}
	if _, ok := g.members[a.UserID]; !ok && !a.Service {
		return nil, errorf(CodeNotMember, "not a member of %s", gid)
	}
	return g, nil
}

// systemWrite builds a system message in a group's conversation, from the
// actor; reader is whose read position it moves (see groupEntry.reader).
func (s *Service) systemWrite(gid string, a Actor, reader string, body systemBody) *store.Write {
	return &store.Write{Kind: store.KindGroup, Reader: reader, Msg: &store.Message{
		Conv: GroupConv(gid), To: gid, From: actorName(a), Type: "system", Body: mustJSON(body)}}
}

// reader is who has read a system message the actor causes: the actor, when
// a member (the service key may name a user who is not one, and a system
// message never makes anyone a reader of a conversation they are not in).
func (g *groupEntry) reader(a Actor) string {
	if _, ok := g.members[a.UserID]; ok {
		return a.UserID
	}
	return ""
}

func (s *Service) usersExist(ctx context.Context, uids []string) error {
	for _, uid := range uids {
		if !ValidID(uid) {
			return errorf(CodeInvalid, "invalid user id %q", uid)
		}
	}
	found, err := s.st.UsersByID(ctx, uids)
	if err != nil {
		return AsError(err)
	}
	for _, uid := range uids {
		if found[uid] == nil {
			return errorf(CodeNotFound, "no user %s", uid)
		}
	}
	return nil
}

func (s *Service) subscribe(gid string, joined, left []string) {
	if len(joined) > 0 {
		s.subs.SubscribeUsers(GroupTopic(gid), joined)
	}
	if len(left) > 0 {
		s.subs.UnsubscribeUsers(GroupTopic(gid), left)
	}
}

func eventsForEach(uids []string, f func(string) outEvent) []outEvent {
	out := make([]outEvent, len(uids))
	for i, uid := range uids {
		out[i] = f(uid)
	}
	return out
}

// actorName is who a system message is from: the acting user, or "" for the
// service.
func actorName(a Actor) string {
	if a.Service && a.UserID == "" {
		return ""
	}
	return a.UserID
}

func isAdmin(role string) bool { return role == store.RoleOwner || role == store.RoleAdmin }

// MemberChange changes a member's role or mute; nil fields stay.
type MemberChange struct {
	Role       *string
	MutedUntil *int64 // Unix ms; 0 unmutes
}

// UpdateMember changes a member's role (owner only, admin or member) or mute
// (owner and admins; admins cannot mute admins or the owner). The change is
// stored as a system message ("role" or "muted") and announced to the group.
func (s *Service) UpdateMember(ctx context.Context, a Actor, gid, uid string, c MemberChange) (*store.Member, error) {
	if !ValidID(uid) {
		return nil, errorf(CodeInvalid, "invalid user id")
	}
	g, err := s.groupFor(ctx, a, gid)
	if err != nil {
		return nil, err
	}
	target, ok := g.members[uid]
	if !ok {
		return nil, errorf(CodeNotFound, "%s is not a member of %s", uid, gid)
	}
	me := g.members[a.UserID]
	if c.Role == nil && c.MutedUntil == nil {
		return nil, errorf(CodeInvalid, "nothing to change: give role or muted_until")
	}
	updated := target
	event := "muted"
	if c.Role != nil {
		if *c.Role != store.RoleAdmin && *c.Role != store.RoleMember {
			return nil, errorf(CodeInvalid, "role must be admin or member (use transfer for owner)")
		}
		if !a.Service && me.Role != store.RoleOwner {
			return nil, errorf(CodeForbidden, "only the owner changes roles")
		}
		if target.Role == store.RoleOwner {
			return nil, errorf(CodeForbidden, "the owner's role changes only by transfer")
		}
		updated.Role, event = *c.Role, "role"
	}
	if c.MutedUntil != nil {
		if *c.MutedUntil < 0 {
			return nil, errorf(CodeInvalid, "muted_until must be Unix milliseconds or 0")
		}
		if !a.Service && (!isAdmin(me.Role) || (me.Role == store.RoleAdmin && isAdmin(target.Role))) {
			return nil, errorf(CodeForbidden, "not allowed to mute %s", uid)
		}
		if target.Role == store.RoleOwner {
			return nil, errorf(CodeForbidden, "the owner cannot be muted")
		}
		updated.MutedUntil = *c.MutedUntil
	}
	data := map[string]any{"role": updated.Role, "muted_until": updated.MutedUntil}
	w := s.systemWrite(gid, a, g.reader(a), systemBody{Event: event, By: actorName(a), Users: []string{uid}, Data: data})
	w.UpdateMembers = []store.Member{updated}
	_, err = s.submitPending(ctx, &pending{w: w, info: &CommitInfo{Group: &g.group},
		events: []outEvent{{GroupTopic(gid), mustJSON(GroupEvent{Kind: "group", Group: gid, Event: event, User: uid, By: actorName(a), Data: data})}},
	})
	if err != nil {
		return nil, err
	}
	return &updated, nil
}
