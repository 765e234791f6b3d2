package chat

import (
	"strings"

	"github.com/mqim/mqim/store"
)

// This file owns every name of the wire contract that is built from ids:
// ids themselves, MQTT client ids, topics and conversation ids. Nothing
// else in mqim parses or builds them.

// ValidID tells whether s is a valid user, group or device id: 1–64
// characters from [A-Za-z0-9_.@-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// ClientID is the MQTT client id of a user's device: "{user}/{device}".
func ClientID(uid, device string) string { return uid + "/" + device }

// DeviceID returns the device part of an MQTT client id whose user part is
// uid, or "" when the client id is not "{uid}/{valid device id}".
func DeviceID(clientID, uid string) string {
	dev, ok := strings.CutPrefix(clientID, uid+"/")
	if !ok || !ValidID(dev) {
		return ""
	}
	return dev
}

// Topic prefixes (the contract's topic table).
const (
	userTopicPrefix  = "im/u/"
	groupTopicPrefix = "im/g/"
)

// Target is where a client publishes or what a conversation is with: a user
// (Kind store.KindDirect, ID a user id: the peer, or oneself for notes to
// self) or a group (Kind store.KindGroup, ID the group id).
type Target struct {
	Kind string
	ID   string
}

// IsGroup tells whether t is a group.
func (t Target) IsGroup() bool { return t.Kind == store.KindGroup }

// Topic is t's MQTT topic: the user's inbox or the group's topic.
func (t Target) Topic() string {
	if t.IsGroup() {
		return GroupTopic(t.ID)
	}
	return UserTopic(t.ID)
}

// Conv is the id of the conversation between uid and t.
func (t Target) Conv(uid string) string {
	if t.IsGroup() {
		return GroupConv(t.ID)
	}
	return DirectConv(uid, t.ID)
}

// UserTopic is a user's inbox.
func UserTopic(uid string) string { return userTopicPrefix + uid }

// GroupTopic is a group's topic.
func GroupTopic(gid string) string { return groupTopicPrefix + gid }

// RequestTopic is where clients publish requests (docs/protocol.md,
// "Requests over MQTT"); nobody subscribes to it.
const RequestTopic = "im/rpc"

// ReplyTopicPrefix starts every device's reply topic.
const ReplyTopicPrefix = "im/r/"

// ReplyTopic is the reply topic of the device with MQTT client id
// clientID ({uid}/{device}): the answers to its requests, and events meant
// for that device alone. Only that client may subscribe to it.
func ReplyTopic(clientID string) string { return ReplyTopicPrefix + clientID }

// ParseTopic reads a chat topic: exactly im/u/{id} or im/g/{id} with a
// valid id. ok is false for anything else (wildcards, extra levels, empty
// or invalid ids, other topics).
func ParseTopic(topic string) (t Target, ok bool) {
	if id, found := strings.CutPrefix(topic, userTopicPrefix); found && ValidID(id) {
		return Target{Kind: store.KindDirect, ID: id}, true
	}
	if id, found := strings.CutPrefix(topic, groupTopicPrefix); found && ValidID(id) {
		return Target{Kind: store.KindGroup, ID: id}, true
	}
	return Target{}, false
}

// DirectConv is the id of the 1:1 conversation of a and b: "d:{a}:{b}" with
// a ≤ b in byte order.
func DirectConv(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "d:" + a + ":" + b
}

// GroupConv is the id of a group's conversation: "g:{gid}".
func GroupConv(gid string) string { return "g:" + gid }

// ConvTarget reads a conversation id as seen by uid: the group, or the peer
// of a 1:1 conversation uid is part of. Any other id is not_found (it names
// no conversation uid could be in).
func ConvTarget(conv, uid string) (Target, error) {
	if gid, ok := strings.CutPrefix(conv, "g:"); ok && ValidID(gid) {
		return Target{Kind: store.KindGroup, ID: gid}, nil
	}
	if rest, ok := strings.CutPrefix(conv, "d:"); ok {
		a, b, _ := strings.Cut(rest, ":")
		if ValidID(a) && ValidID(b) && a <= b {
			switch uid {
			case a:
				return Target{Kind: store.KindDirect, ID: b}, nil
			case b:
				return Target{Kind: store.KindDirect, ID: a}, nil
			}
		}
	}
	return Target{}, errorf(CodeNotFound, "no conversation %s", conv)
}

// DirectUsers returns the two users of a 1:1 conversation id (the same one
// twice for notes to self); ok is false for any other id.
func DirectUsers(conv string) (a, b string, ok bool) {
	rest, found := strings.CutPrefix(conv, "d:")
	if !found {
		return "", "", false
	}
	a, b, _ = strings.Cut(rest, ":")
	if !ValidID(a) || !ValidID(b) || a > b {
		return "", "", false
	}
	return a, b, true
}

// validConvID tells whether s has the shape of a conversation id (d:{a}:{b}
// with a ≤ b, or g:{gid}), whoever's it is.
func validConvID(s string) bool {
	if gid, ok := strings.CutPrefix(s, "g:"); ok {
		return ValidID(gid)
	}
	_, _, ok := DirectUsers(s)
	return ok
}
