package chat

import (
	"context"

	"github.com/mqim/mqim/store"
)

// This file owns who may see what of other users: presence, and the
// private parts of a profile.

// VisibleUsers returns which of uids the actor may see the presence of: the
// service key sees everyone; a user sees themself and the users they share
// a conversation with, and their friends.
func (s *Service) VisibleUsers(ctx context.Context, a Actor, uids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(uids))
	var others []string
	for _, uid := range uids {
		if !ValidID(uid) {
			return nil, errorf(CodeInvalid, "invalid user id %q", uid)
		}
		if a.Service || uid == a.UserID {
			out[uid] = true
		} else {
			others = append(others, uid)
		}
	}
	if len(others) == 0 {
		return out, nil
	}
	contacts, err := s.st.Contacts(ctx, a.UserID, others)
	if err != nil {
		return nil, AsError(err)
	}
	for uid := range contacts {
		out[uid] = true
	}
	friends, err := s.soc.friends.get(ctx, a.UserID)
	if err != nil {
		return nil, AsError(err)
	}
	for _, uid := range others {
		if _, ok := friends[uid]; ok {
			out[uid] = true
		}
	}
	return out, nil
}

// Profile returns uid's profile as the actor sees it, and whether the view
// is full: ext and the disabled flag are shown only to the service key and
// to the user themself.
func (s *Service) Profile(ctx context.Context, a Actor, uid string) (*store.User, bool, error) {
	u, err := s.User(ctx, uid)
	if err != nil {
		return nil, false, err
	}
	if a.Service || a.UserID == uid {
		return u, true, nil
	}
	pub := *u
	pub.Ext, pub.Disabled = nil, false
	return &pub, false, nil
}
