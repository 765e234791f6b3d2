// Package push sends offline-push notifications: the Notifier interface (a
// gorush implementation lives in push/gorush), and a bounded asynchronous
// Dispatcher that batches, retries and prunes dead device tokens. Nothing in
// this package may block the MQTT broker or the send path: work is queued,
// and dropped (and counted) when the queue is full.
package push

import "context"

// Notification is one push to one user's devices of one platform.
type Notification struct {
	UserID   string
	Platform string   // a device platform: ios, android, huawei (gorush), xiaomi, ...
	Tokens   []string // device tokens of that user and platform
	Topic    string   // APNs topic (iOS bundle id); empty elsewhere
	Title    string   // sender name (1:1) or group name
	Body     string   // short preview
	Badge    int      // the user's total unread
	ThreadID string   // collapse/thread id: the conversation id
	// Data is delivered to the app: {"conv", "id", "seq"}.
	Data map[string]any
}

// DeadToken is a device token the push service reported as permanently
// invalid (unregistered, bad, expired, wrong topic).
type DeadToken struct {
	Platform string
	Token    string
	Reason   string
}

// Result is what a push service reported for a batch it accepted.
type Result struct {
	// Dead tokens are to be pruned.
	Dead []DeadToken
	// Failed counts tokens that failed for other reasons (not pruned).
	Failed int
}

// Notifier sends a batch of notifications to a push service. It returns a
// *SendError when the batch as a whole was not accepted. Implementations
// must be safe for concurrent use and honour ctx.
type Notifier interface {
	Send(ctx context.Context, batch []Notification) (Result, error)
}

// SendError is a failed Send.
type SendError struct {
	Status int // HTTP status, 0 for a network error
	// Retry tells whether sending the same batch again is safe and may work
	// (network errors and 5xx), as opposed to a 4xx refusal.
	Retry bool
	// Partial: the service may have queued part of the batch before failing
	// (gorush's empty 500 when its queue is full), so a retry of the whole
	// batch could duplicate notifications.
	Partial bool
	Err     error
}

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// GorushPlatform tells whether gorush serves a platform: ios, android
// (FCM) and huawei. Other platforms' notifications are handed to the
// product's own push service as push.requested webhook events.
func GorushPlatform(platform string) bool {
	switch platform {
	case "ios", "android", "huawei":
		return true
	}
	return false
}

// Route is the Enqueuer that sends a notification to Gorush when gorush
// serves its platform and to Webhook otherwise. A nil side means that kind
// of push is off: its notifications are ignored (false).
type Route struct {
	Gorush  Enqueuer
	Webhook Enqueuer
}

// Enqueue implements Enqueuer.
func (r Route) Enqueue(n Notification) bool {
	out := r.Webhook
	if GorushPlatform(n.Platform) {
		out = r.Gorush
	}
	if out == nil {
		return false
	}
	return out.Enqueue(n)
}
