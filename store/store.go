// Package store defines mqim's persistence contract: plain models, the Store
// interface split by aggregate, and the sentinel errors every implementation
// returns. Implementations live in subpackages (store/sqlite, store/mysql,
// both built on store/sqlstore) and must pass store/storetest unchanged.
//
// All times are Unix milliseconds. Every method takes a context and may block
// on the database; none of them is safe to call from a place that must not
// block (an MQTT hook's fast path caches what it needs instead).
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: the user, group, member, conversation or message does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key was violated (an id already taken, a seq taken
	// by another writer).
	ErrConflict = errors.New("conflict")
	// ErrLimit: a stored collection is at its cap (a group's pending join
	// requests).
	ErrLimit = errors.New("limit reached")
)

// User is a chat user. PasswordHash is empty when the user cannot log in with
// a password. Tokens issued before TokensAfter are no longer valid.
type User struct {
	ID           string `db:"id" json:"id"`
	Name         string `db:"name" json:"name"`
	Avatar       string `db:"avatar" json:"avatar"`
	Ext          JSON   `db:"ext" json:"ext"`
	PasswordHash string `db:"password_hash" json:"-"`
	Disabled     bool   `db:"disabled" json:"disabled"`
	TokensAfter  int64  `db:"tokens_after" json:"-"`
	CreatedAt    int64  `db:"created_at" json:"created_at"`
	UpdatedAt    int64  `db:"updated_at" json:"updated_at"`
}

// AcceptsToken tells whether a token issued at issuedAt may act as u: the
// user is enabled and the token was not revoked (issued before
// TokensAfter). Both doors, MQTT connect and HTTP, ask this.
func (u *User) AcceptsToken(issuedAt time.Time) bool {
	return !u.Disabled && issuedAt.UnixMilli() >= u.TokensAfter
}

// Group roles.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Group is a chat group. Its conversation id is built by chat.GroupConv.
type Group struct {
	ID         string `db:"id" json:"id"`
	Name       string `db:"name" json:"name"`
	Avatar     string `db:"avatar" json:"avatar"`
	Notice     string `db:"notice" json:"notice"`
	Owner      string `db:"owner" json:"owner"`
	JoinPolicy string `db:"join_policy" json:"join_policy"`
	MuteAll    bool   `db:"mute_all" json:"mute_all"`
	Ext        JSON   `db:"ext" json:"ext"`
	Dissolved  bool   `db:"dissolved" json:"dissolved"`
	CreatedAt  int64  `db:"created_at" json:"created_at"`
	UpdatedAt  int64  `db:"updated_at" json:"updated_at"`
}

// Member is one user's membership of a group.
type Member struct {
	GroupID    string `db:"group_id" json:"-"`
	UserID     string `db:"user_id" json:"user_id"`
	Role       string `db:"role" json:"role"`
	MutedUntil int64  `db:"muted_until" json:"muted_until"`
	JoinSeq    int64  `db:"join_seq" json:"join_seq"`
	JoinedAt   int64  `db:"joined_at" json:"joined_at"`
}

// Message is a stored chat message. Body and Ext are JSON; Mentions is nil
// when there are none.
type Message struct {
	ID       string   `db:"id"`
	Conv     string   `db:"conv_id"`
	Seq      int64    `db:"seq"`
	From     string   `db:"sender"`
	To       string   `db:"to_id"`
	CID      string   `db:"cid"`
	Type     string   `db:"type"`
	Body     JSON     `db:"body"`
	ReplyTo  string   `db:"reply_to"`
	Mentions []string `db:"-"`
	Ext      JSON     `db:"ext"`
	TS       int64    `db:"ts"`
	EditedAt int64    `db:"edited_at"`
	Recalled bool     `db:"recalled"`
}

// Conversation kinds.
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// Conversation is one user's row of a conversation, as stored: the shared
// state (LastSeq, LastMessage) joined with the user's own (ReadSeq, Pinned,
// ...). What the user may see of it is decided by package chat.
type Conversation struct {
	ID      string
	Kind    string // KindDirect or KindGroup
	LastSeq int64  // the conversation's last seq
	// ReadSeq is the user's read position. For a former member (Active
	// false) it is the seq of their leave event, and stays there.
	ReadSeq int64
	MinSeq  int64 // the user's join point: seqs above it are theirs to see
	Pinned  bool
	Muted   bool
	Hidden  bool
	// Active is false once the user left the group.
	Active bool
	// UpdatedAt is when the conversation last changed for this user: its
	// last message, or for a former member the leave.
	UpdatedAt int64
	// LastMessage is the conversation's last message (nil if none).
	LastMessage *Message
}

// MsgQuery selects a page of a conversation's messages.
type MsgQuery struct {
	After  int64
	Before int64 // 0: no upper bound
	Limit  int
	Desc   bool
}

// ConvQuery selects a page of a user's conversations: those updated after
// UpdatedAfter and, when After is set, strictly after that conversation in
// the list order (pinned first, then newest, ties by id).
type ConvQuery struct {
	UpdatedAfter int64
	After        *ConvCursor
	Limit        int
}

// ConvCursor is a position in a conversation list: the sort key of the
// last conversation of the previous page.
type ConvCursor struct {
	Pinned    bool
	UpdatedAt int64
	ID        string
}

// Unread is one conversation's unread count, for GET /v1/unread.
type Unread struct {
	Conv   string `db:"conv_id"`
	Unread int64  `db:"unread"`
	Muted  bool   `db:"muted"`
}

// ConvPrefs changes a user's conversation settings; nil fields stay.
type ConvPrefs struct {
	Pinned *bool
	Muted  *bool
	Hidden *bool
}

// Device platforms.
const (
	PlatformIOS     = "ios"
	PlatformAndroid = "android"
	PlatformHuawei  = "huawei"
)

// Device is a push registration.
type Device struct {
	UserID    string `db:"user_id" json:"user_id"`
	DeviceID  string `db:"device_id" json:"device_id"`
	Platform  string `db:"platform" json:"platform"`
	Token     string `db:"token" json:"token"`
	Topic     string `db:"topic" json:"topic,omitempty"`
	UpdatedAt int64  `db:"updated_at" json:"updated_at"`
}

// Write is one unit of a group commit: a message (its Seq already assigned
// by the caller) and the state changes that must commit with it. Commit
// applies every Write of a batch in one transaction.
type Write struct {
	Msg *Message
	// Kind of the conversation (KindDirect or KindGroup); required. For a
	// group, Msg.To is the group id.
	Kind string
	// Reader is the user whose read position moves up to this message (a
	// sender has read what it sent); empty for none. The caller names only
	// a member of the conversation (a Participant of this or an earlier
	// write, or a group member): a former member's position never moves.
	Reader string
	// Participants are made conversation members (if not already), seeing
	// history from this message on: used for the two users of a direct
	// conversation on its first message. Group joins use AddMembers.
	Participants []string
	// NewGroup, when set, is inserted with the message (group creation).
	NewGroup *Group
	// AddMembers are inserted into group_members with join_seq = Msg.Seq;
	// their conversation read_seq is Msg.Seq and min_seq Msg.Seq-1, so they
	// see history from their own join event on, with nothing unread. Their
	// pending join requests to the group, if any, are deleted.
	AddMembers []Member
	// RemoveMembers leave the group: their group_members row is deleted and
	// their conversation row is marked inactive (history up to now stays).
	RemoveMembers []string
	// UpdateMembers set the role and muted_until of existing members.
	UpdateMembers []Member
	// UpdateGroup, when set, replaces the group's name, avatar, notice,
	// owner, join_policy, mute_all, ext and updated_at with its own (its ID,
	// CreatedAt and Dissolved are ignored: the group is Msg.To).
	UpdateGroup *Group
	// DissolveGroup marks the group dissolved: every member leaves as with
	// RemoveMembers (history up to this message stays readable, read up to
	// it) and the group's pending join requests are deleted.
	DissolveGroup bool
	// Recall, when set, is the id of a message of the same conversation
	// that Msg (a "recall" record) withdraws: that message is changed in
	// place, recalled with its body and ext removed. Commit returns
	// ErrConflict when it is recalled already (or not in the conversation).
	Recall string
	// Edit, when set, replaces the body of a message of the same
	// conversation (Msg is the "edit" record) and sets its edited_at to
	// Msg.TS. Commit returns ErrConflict when that message is recalled (or
	// not in the conversation). At most one of Recall and Edit is set.
	Edit *Edit
}

// Edit is a body replacement (Write.Edit).
type Edit struct {
	ID   string // the edited message
	Body JSON   // its new body
}

// Users is the user aggregate.
type Users interface {
	// UpsertUser creates u or updates its profile fields. It reports whether
	// the user was created. CreatedAt is kept on update.
	UpsertUser(ctx context.Context, u *User) (created bool, err error)
	// User returns one user or ErrNotFound.
	User(ctx context.Context, id string) (*User, error)
	// UsersByID returns the users that exist among ids, keyed by id.
	UsersByID(ctx context.Context, ids []string) (map[string]*User, error)
}

// Groups is the group aggregate. Membership changes that must appear in the
// conversation's history go through Messages.Commit instead.
type Groups interface {
	// Group returns one group (dissolved ones too) or ErrNotFound.
	Group(ctx context.Context, id string) (*Group, error)
	// Members lists a group's members: the owner, then admins, then the
	// rest, each by join time.
	Members(ctx context.Context, groupID string) ([]Member, error)
	// UserGroups lists the ids of the groups a user belongs to.
	UserGroups(ctx context.Context, userID string) ([]string, error)
	// GroupCounts returns how many groups each of userIDs belongs to (users
	// in none are absent).
	GroupCounts(ctx context.Context, userIDs []string) (map[string]int, error)
}

// JoinRequest is a user's pending request to join a group whose policy is
// "approval".
type JoinRequest struct {
	GroupID   string `db:"group_id" json:"-"`
	UserID    string `db:"user_id" json:"user_id"`
	Message   string `db:"message" json:"message,omitempty"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
}

// GroupRequests is the join-request aggregate. A request ends when it is
// deleted, or when its user joins (Write.AddMembers) or the group is
// dissolved.
type GroupRequests interface {
	// PutJoinRequest stores r unless the same user already has a request to
	// the same group: then the stored one is left as it is and created is
	// false. A new request to a group holding max requests (max > 0) is
	// refused with ErrLimit.
	PutJoinRequest(ctx context.Context, r *JoinRequest, max int) (created bool, err error)
	// JoinRequest returns one request or ErrNotFound.
	JoinRequest(ctx context.Context, groupID, userID string) (*JoinRequest, error)
	// JoinRequests lists a group's requests, oldest first (ties by user id).
	JoinRequests(ctx context.Context, groupID string) ([]JoinRequest, error)
	// DeleteJoinRequest removes one request or returns ErrNotFound.
	DeleteJoinRequest(ctx context.Context, groupID, userID string) error
}

// Messages is the message and conversation aggregate.
type Messages interface {
	// LastSeqs returns the stored last_seq of each existing conversation
	// among ids; missing ones are absent from the map.
	LastSeqs(ctx context.Context, ids []string) (map[string]int64, error)
	// MessagesByCID returns the stored messages matching (sender, cid) pairs,
	// keyed by sender+"\x00"+cid.
	MessagesByCID(ctx context.Context, keys [][2]string) (map[string]*Message, error)
	// MessagesByID returns the stored messages among ids, keyed by id.
	MessagesByID(ctx context.Context, ids []string) (map[string]*Message, error)
	// Commit stores a batch atomically: all or none. It returns ErrConflict
	// when a (conv, seq) or (sender, cid) is already taken, so the caller can
	// reload seqs and retry.
	Commit(ctx context.Context, batch []Write) error
	// Messages pages a conversation: the rows with After < seq < Before
	// (Before 0: no upper bound), ascending, or descending when Desc, at
	// most Limit.
	Messages(ctx context.Context, conv string, q MsgQuery) ([]*Message, error)
	// Search pages the messages userID may see whose SearchText contains
	// q.Text, newest first (TS, then ID, descending), at most q.Limit: in the
	// conversations the user is or was a member of, within each one's
	// window (seqs above MinSeq; for a former member, up to ReadSeq, the
	// leave), never a recalled message. Commit keeps what is searched in
	// step with the messages, recalls and edits included.
	Search(ctx context.Context, userID string, q SearchQuery) ([]*Message, error)
	// Conversations lists a user's conversations, pinned ones first, then
	// newest first by the user's updated time, ties by id; filtered and paged
	// by q.
	Conversations(ctx context.Context, userID string, q ConvQuery) ([]Conversation, error)
	// Conversation returns one user's view of one conversation or ErrNotFound.
	Conversation(ctx context.Context, userID, conv string) (*Conversation, error)
	// Unreads lists the conversations in which the user, an active member,
	// has unread messages, by conversation id.
	Unreads(ctx context.Context, userID string) ([]Unread, error)
	// MarkRead raises the user's read_seq to seq (never lowers it, never above
	// last_seq) and returns the resulting read_seq and whether it moved;
	// moving it moves the member's UpdatedAt.
	MarkRead(ctx context.Context, userID, conv string, seq int64) (readSeq int64, moved bool, err error)
	// SetConvPrefs changes pinned/muted/hidden and reports whether any
	// changed; a change moves the member's UpdatedAt.
	SetConvPrefs(ctx context.Context, userID, conv string, p ConvPrefs) (changed bool, err error)
	// PushStates returns, for each of userIDs, whether conv is muted for
	// them and their total unread over unmuted conversations they are
	// active in (the push badge).
	PushStates(ctx context.Context, conv string, userIDs []string) (map[string]PushState, error)
	// Contacts returns which of others share a conversation with userID in
	// which both are still active members.
	Contacts(ctx context.Context, userID string, others []string) (map[string]bool, error)
}

// PushState is what a push decision needs about one recipient.
type PushState struct {
	Muted  bool
	Unread int64
}

// Devices is the push-registration aggregate.
type Devices interface {
	// PutDevice registers or updates a device. A token already registered to
	// another user or device moves to this one.
	PutDevice(ctx context.Context, d *Device) error
	// DeleteDevice removes one device or returns ErrNotFound.
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	// Devices lists a user's devices by device id.
	Devices(ctx context.Context, userID string) ([]Device, error)
	// DevicesOf lists the devices of several users (push fan-out).
	DevicesOf(ctx context.Context, userIDs []string) ([]Device, error)
	// DeleteToken removes a token reported dead by the push service.
	DeleteToken(ctx context.Context, platform, token string) error
}

// FriendRequest is a pending request from one user to another.
type FriendRequest struct {
	From      string `db:"from_user"`
	To        string `db:"to_user"`
	Message   string `db:"message"`
	CreatedAt int64  `db:"created_at"`
}

// Friend is one of a user's friends, and since when.
type Friend struct {
	UserID string `db:"friend_id"`
	Since  int64  `db:"since"`
}

// Block is a user a user blocked, and when.
type Block struct {
	UserID    string `db:"blocked_id"`
	CreatedAt int64  `db:"created_at"`
}

// SocialCounts are a user's totals that the per-user caps bound.
type SocialCounts struct {
	Outgoing int // pending requests the user sent
	Friends  int
	Blocks   int
}

// Social is the friends and blocks aggregate. A friendship is symmetric; a
// block is one user's (blocker, blocked).
type Social interface {
	// PutFriendRequest stores r unless a request from r.From to r.To is
	// pending; it reports whether it stored it.
	PutFriendRequest(ctx context.Context, r *FriendRequest) (created bool, err error)
	// FriendRequest returns the pending request from one user to another or
	// ErrNotFound.
	FriendRequest(ctx context.Context, from, to string) (*FriendRequest, error)
	// DeleteFriendRequest removes the request from one user to another, or
	// returns ErrNotFound.
	DeleteFriendRequest(ctx context.Context, from, to string) error
	// FriendRequests lists the requests pending to and from userID, newest
	// first.
	FriendRequests(ctx context.Context, userID string) (incoming, outgoing []FriendRequest, err error)
	// AddFriends makes a and b friends since the given time and removes the
	// requests between them (both directions), atomically. ErrConflict: they
	// are friends already (nothing changes).
	AddFriends(ctx context.Context, a, b string, since int64) error
	// RemoveFriends ends the friendship of a and b, or returns ErrNotFound.
	RemoveFriends(ctx context.Context, a, b string) error
	// Friends lists a user's friends by user id.
	Friends(ctx context.Context, userID string) ([]Friend, error)
	// PutBlock records that blocker blocks blocked, at the given time, and
	// removes the requests between them (both directions), atomically; an
	// existing block is kept as it is. It reports whether the block is new.
	PutBlock(ctx context.Context, blocker, blocked string, at int64) (created bool, err error)
	// DeleteBlock removes a block, or returns ErrNotFound.
	DeleteBlock(ctx context.Context, blocker, blocked string) error
	// Blocks lists the users a user blocked, by user id.
	Blocks(ctx context.Context, userID string) ([]Block, error)
	// SocialCounts counts a user's pending outgoing requests, friends and
	// blocks.
	SocialCounts(ctx context.Context, userID string) (SocialCounts, error)
}

// Session is a persistent MQTT session (3.1.1 clean=false, MQTT 5 session
// expiry > 0) as stored: who owns it, how long it outlives its connection,
// when it began and when its last connection ended.
type Session struct {
	ClientID string `db:"client_id"`
	UserID   string `db:"user_id"`
	// Expiry is how long (seconds) the session outlives its connection.
	Expiry int64 `db:"expiry_s"`
	// Baseline is when the session began: a conversation the session has
	// no position in replays the messages stored after it (their TS).
	Baseline int64 `db:"baseline"`
	// DisconnectedAt is when its last connection ended; 0 while connected.
	DisconnectedAt int64 `db:"disconnected_at"`
	UpdatedAt      int64 `db:"updated_at"`
	// Node is the cluster node its current or last connection reached (""
	// on a node alone), ConnectedAt when that connection began (Unix ms):
	// together they name the connection that owns the row (EndSession).
	Node        string `db:"node"`
	ConnectedAt int64  `db:"connected_at"`
}

// Expired tells whether the session has outlived its expiry at now (Unix
// ms). A connected session never expires.
func (s *Session) Expired(now int64) bool {
	return s.DisconnectedAt > 0 && s.DisconnectedAt+s.Expiry*1000 < now
}

// Position is how far a session has acknowledged one conversation: every
// message of Conv up to Seq was delivered to it.
type Position struct {
	ClientID string `db:"client_id"`
	Conv     string `db:"conv_id"`
	Seq      int64  `db:"seq"`
}

// Sessions is the persistent-session aggregate: the sessions and their
// positions, which the broker writes lazily (a position may lag what the
// device acknowledged, never lead it).
type Sessions interface {
	// PutSession creates s or updates every field of the stored one but
	// its Baseline (the session goes on); it sets s.UpdatedAt, and
	// s.Baseline to the stored one.
	PutSession(ctx context.Context, s *Session) error
	// Session returns one session or ErrNotFound.
	Session(ctx context.Context, clientID string) (*Session, error)
	// ListSessions returns every stored session, by client id.
	ListSessions(ctx context.Context) ([]Session, error)
	// DeleteSession removes a session and its positions; none is no error.
	DeleteSession(ctx context.Context, clientID string) error
	// EndSession records that the connection of s (its ClientID, Node and
	// ConnectedAt) ended at s.DisconnectedAt, and only if that connection
	// still owns the row: a later connection (here, or on another node)
	// keeps it connected. When no row exists, s is stored. It reports
	// whether it wrote.
	EndSession(ctx context.Context, s *Session) (bool, error)
	// EndNodeSessions marks every session still connected through node as
	// disconnected at at (the node died), so that they expire; it returns
	// how many.
	EndNodeSessions(ctx context.Context, node string, at int64) (int64, error)
	// DeleteExpiredSessions removes the sessions expired at now (Unix ms)
	// and their positions, and returns how many.
	DeleteExpiredSessions(ctx context.Context, now int64) (int64, error)
	// SavePositions raises each position to its Seq (never lowers one),
	// creating those that do not exist, in one transaction.
	SavePositions(ctx context.Context, ps []Position) error
	// Positions returns a session's positions by conversation id.
	Positions(ctx context.Context, clientID string) (map[string]int64, error)
}

// Store is everything mqim persists.
type Store interface {
	Users
	Groups
	GroupRequests
	Messages
	Devices
	Social
	Sessions
	// Ping tells whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the connection pool.
	Close() error
}
