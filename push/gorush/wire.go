package gorush

// Wire types of gorush's POST /api/push, limited to the fields mqim sends
// and reads (as gorush v1.22 defines and answers them). The fake server in
// gorushtest keeps its own copies, written from gorush's source, so that a
// wrong tag here is caught rather than shared.

// Platform numbers as gorush expects them (core/core.go).
const (
	PlatformIOS     = 1
	PlatformAndroid = 2
	PlatformHuawei  = 3
)

// PushPath is gorush's default push route.
const PushPath = "/api/push"

// MaxNotification is gorush's default core.max_notification: a request with
// more notifications is refused with a 400.
const MaxNotification = 100

// Request is the body of POST /api/push.
type Request struct {
	Notifications []PushNotification `json:"notifications"`
}

// PushNotification is one entry of Request.Notifications.
type PushNotification struct {
	ID       string         `json:"notif_id,omitempty"`
	Platform int            `json:"platform"`
	Tokens   []string       `json:"tokens"`
	Topic    string         `json:"topic,omitempty"`
	Title    string         `json:"title,omitempty"`
	Message  string         `json:"message,omitempty"`
	Priority string         `json:"priority,omitempty"`
	Sound    any            `json:"sound,omitempty"` // string or {"name","critical","volume"}
	Data     map[string]any `json:"data,omitempty"`

	// iOS only.
	Badge      *int   `json:"badge,omitempty"` // pointer: 0 clears the badge and must be sent
	ThreadID   string `json:"thread-id,omitempty"`
	CollapseID string `json:"collapse_id,omitempty"`

	// Android (FCM HTTP v1) only: gorush has no top-level collapse key.
	Android *AndroidConfig `json:"android,omitempty"`
}

// AndroidConfig is the subset of FCM's AndroidConfig mqim uses.
type AndroidConfig struct {
	CollapseKey string `json:"collapse_key,omitempty"`
	Priority    string `json:"priority,omitempty"`
}

// Response is gorush's 200 reply.
type Response struct {
	Counts  int        `json:"counts"`
	Logs    []LogEntry `json:"logs"`
	Success string     `json:"success"`
}

// LogEntry is one failure reported in Response.Logs (sync mode) or posted
// to the feedback hook (logx.LogPushEntry).
type LogEntry struct {
	ID       string `json:"notif_id,omitempty"`
	Type     string `json:"type"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	Message  string `json:"message"`
	Error    string `json:"error"`
}

// ErrorBody is the body of gorush's 4xx replies (abortWithError).
type ErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// FailedPush is LogEntry.Type for a failed push; gorush reports no other.
const FailedPush = "failed-push"

// permanent holds the error strings that mean the token is dead: APNs
// reasons (sideshow/apns2) and the FCM v1 UNREGISTERED message. Everything
// else (DNS, timeouts, auth, payload or topic problems) is transient or a
// configuration problem, never a reason to prune.
var permanent = map[string]bool{
	"Unregistered":                    true,
	"BadDeviceToken":                  true,
	"DeviceTokenNotForTopic":          true,
	"ExpiredToken":                    true,
	"Requested entity was not found.": true,
}

// IsPermanent tells whether a gorush log error string means the device token
// is permanently invalid and should be pruned. The match is exact.
func IsPermanent(errText string) bool { return permanent[errText] }
