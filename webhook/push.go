package webhook

import (
	"encoding/json"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/push"
)

// PushRequest is the data of a push.requested event: one notification for
// one device, for the product's own push service.
type PushRequest struct {
	User       string         `json:"user"`
	Platform   string         `json:"platform"`
	Token      string         `json:"token"`
	Topic      string         `json:"topic,omitempty"` // APNs topic (ios)
	Title      string         `json:"title"`
	Text       string         `json:"text"`
	Badge      int            `json:"badge"`
	Data       map[string]any `json:"data"` // {conv, id, seq}
	CollapseID string         `json:"collapse_id"`
}

// Push is the push.Enqueuer that hands notifications to the product's push
// service as push.requested events, one per device token. It never blocks.
type Push struct{ Hub *Hub }

var _ push.Enqueuer = Push{}

// Enqueue implements push.Enqueuer.
func (p Push) Enqueue(n push.Notification) bool {
	for _, tok := range n.Tokens {
		data, err := json.Marshal(PushRequest{User: n.UserID, Platform: n.Platform, Token: tok, Topic: n.Topic,
			Title: n.Title, Text: n.Body, Badge: n.Badge, Data: n.Data, CollapseID: n.ThreadID})
		if err != nil {
			continue
		}
		p.Hub.Observe(chat.EventPushRequested, data)
	}
	return len(n.Tokens) > 0
}
