package chat

import (
	"encoding/json"

	"github.com/mqim/mqim/store"
)

// MsgEvent is the canonical msg event (docs/protocol.md, "What the server sends").
type MsgEvent struct {
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	Conv     string          `json:"conv"`
	Seq      int64           `json:"seq"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	CID      string          `json:"cid,omitempty"`
	TS       int64           `json:"ts"`
	ReplyTo  *string         `json:"reply_to"`
	Mentions []string        `json:"mentions"`
	Ext      json.RawMessage `json:"ext"`
	EditedAt int64           `json:"edited_at,omitempty"`
	Recalled bool            `json:"recalled,omitempty"`
}

// NewMsgEvent renders a stored message as the event clients receive.
func NewMsgEvent(m *store.Message) MsgEvent {
	e := MsgEvent{Kind: KindMsg, ID: m.ID, Conv: m.Conv, Seq: m.Seq, From: m.From, To: m.To, Type: m.Type,
		Body: json.RawMessage(m.Body), CID: m.CID, TS: m.TS, Mentions: m.Mentions, Ext: json.RawMessage(m.Ext), EditedAt: m.EditedAt, Recalled: m.Recalled}
	if m.ReplyTo != "" {
		r := m.ReplyTo
		e.ReplyTo = &r
	}
	if e.Mentions == nil {
		e.Mentions = []string{}
	}
	if len(e.Ext) == 0 {
		e.Ext = nil
	}
	return e
}

// ReadEvent tells that a user read a conversation up to seq.
type ReadEvent struct {
	Kind string `json:"kind"`
	Conv string `json:"conv"`
	User string `json:"user"`
	Seq  int64  `json:"seq"`
}

// KindConv is the event of a user's changed view of a conversation.
const KindConv = "conv"

// ConvEvent tells a user's devices that one of them changed its view of a
// conversation (multi-device sync).
type ConvEvent struct {
	Kind    string `json:"kind"`
	Conv    string `json:"conv"`
	Pinned  bool   `json:"pinned"`
	Muted   bool   `json:"muted"`
	Hidden  bool   `json:"hidden"`
	ReadSeq int64  `json:"read_seq"`
}

// TypingEvent is relayed at QoS 0 and never stored.
type TypingEvent struct {
	Kind string `json:"kind"`
	Conv string `json:"conv"`
	User string `json:"user"`
}

// GroupEvent tells about a group change.
type GroupEvent struct {
	Kind  string `json:"kind"`
	Group string `json:"group"`
	Event string `json:"event"`
	User  string `json:"user,omitempty"`
	By    string `json:"by,omitempty"`
	Data  any    `json:"data,omitempty"`
}

// ErrorEvent tells the sender's devices that a publish was refused.
type ErrorEvent struct {
	Kind    string `json:"kind"`
	CID     string `json:"cid,omitempty"`
	Device  string `json:"device"` // the device whose publish was refused
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter (seconds) comes with rate_limited.
	RetryAfter int `json:"retry_after,omitempty"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own event types are marshalled
	}
	return b
}

// RecallEvent is the live delivery of a stored recall record: message ID
// of Conv was recalled by By; Seq and TS are the record's.
type RecallEvent struct {
	Kind string `json:"kind"`
	Conv string `json:"conv"`
	ID   string `json:"id"`
	By   string `json:"by"`
	TS   int64  `json:"ts"`
	Seq  int64  `json:"seq"`
}

// EditEvent is the live delivery of a stored edit record: message ID of
// Conv now has Body; Seq and TS are the record's (TS is the message's
// edited_at).
type EditEvent struct {
	Kind string          `json:"kind"`
	Conv string          `json:"conv"`
	ID   string          `json:"id"`
	By   string          `json:"by"`
	Body json.RawMessage `json:"body"`
	TS   int64           `json:"ts"`
	Seq  int64           `json:"seq"`
}
