// Package gorushtest is a fake gorush server for tests. It validates
// POST /api/push the way gorush v1.22 does (as observed against a real
// gorush): the same 400s with the same messages,
// silent dropping of notifications for platforms that are not enabled,
// gorush's `counts`, and failure `logs` in sync mode. Knobs inject failures
// (5xx, gorush's empty 500 after queueing a prefix, delays, a server that is
// down) and it records every notification it accepted.
//
// Its wire types are its own, written from gorush's source, and deliberately
// not shared with the client: a wrong JSON tag in the client shows up as a
// missing field here.
package gorushtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Platforms, as gorush numbers them.
const (
	IOS     = 1
	Android = 2
	Huawei  = 3
)

// Messages of gorush's 400 replies.
const (
	MsgMissing = "Missing notifications field."
	MsgEmpty   = "Notifications field is empty."
)

// request mirrors gorush's RequestPush; Notifications is binding:"required",
// which gin enforces as "not nil".
type request struct {
	Notifications []notification `json:"notifications"`
}

// notification mirrors the fields of gorush's PushNotification that mqim
// uses, with gorush's Go types (so that a type mismatch fails binding as in
// gorush, e.g. "platform":"ios").
type notification struct {
	ID         string         `json:"notif_id"`
	Platform   int            `json:"platform"`
	Tokens     []string       `json:"tokens"`
	To         string         `json:"to"`
	Topic      string         `json:"topic"`
	Title      string         `json:"title"`
	Message    string         `json:"message"`
	Priority   string         `json:"priority"`
	Sound      any            `json:"sound"`
	Data       map[string]any `json:"data"`
	Badge      *int           `json:"badge"`
	ThreadID   string         `json:"thread-id"`
	CollapseID string         `json:"collapse_id"`
	Android    *struct {
		CollapseKey string `json:"collapse_key"`
		Priority    string `json:"priority"`
		TTL         string `json:"ttl"`
	} `json:"android"`
	ContentAvailable bool `json:"content_available"`
	MutableContent   bool `json:"mutable_content"`
}

// Received is one notification the fake accepted (queued), as it decoded it.
type Received struct {
	ID              string // notif_id
	Platform        int
	Tokens          []string
	Topic           string
	Title           string
	Message         string
	Priority        string // top-level priority
	Sound           any
	Badge           *int
	Data            map[string]any
	ThreadID        string // thread-id (iOS)
	CollapseID      string // collapse_id (iOS)
	HasAndroid      bool   // an "android" object was present
	CollapseKey     string // android.collapse_key
	AndroidPriority string // android.priority
}

// LogEntry is gorush's logx.LogPushEntry.
type LogEntry struct {
	ID       string `json:"notif_id,omitempty"`
	Type     string `json:"type"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	Message  string `json:"message"`
	Error    string `json:"error"`
}

type failure struct {
	status int
	body   string
}

// Server is a fake gorush on a loopback port. All methods are safe for
// concurrent use.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:38211; it stays the same
	// across Down and Up.
	URL  string
	addr string

	mu      sync.Mutex
	srv     *http.Server
	gone    chan struct{} // closed by Down and Close: ends delayed replies
	down    bool
	closed  bool
	serving sync.WaitGroup // Serve loops
	active  sync.WaitGroup // handlers

	maxNotification int
	enabled         map[int]bool
	sync            bool
	hideToken       bool
	androidRetry    int
	failing         map[string]string // token -> error text
	failPlatform    map[int]string    // platform -> whole-notification error
	failNext        []failure
	queueFull       []int // per request: notifications queued before the empty 500
	delay           time.Duration

	received []Received
	requests int
	counts   int
	dropped  int
}

// New starts a fake gorush: max_notification 100, iOS and Android enabled,
// Huawei not, sync mode, tokens not hidden.
func New() *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("gorushtest: listen: %v", err))
	}
	s := &Server{
		addr:            ln.Addr().String(),
		maxNotification: 100,
		enabled:         map[int]bool{IOS: true, Android: true},
		sync:            true,
		failing:         map[string]string{},
		failPlatform:    map[int]string{},
	}
	s.URL = "http://" + s.addr
	s.serve(ln)
	return s
}

// Start is New with Close registered as a cleanup of t.
func Start(t testing.TB) *Server {
	s := New()
	t.Cleanup(s.Close)
	return s
}

// serve starts an http.Server on ln; s.mu must be held or s unshared.
func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	s.gone = make(chan struct{})
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = srv.Serve(ln)
	}()
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.stopLocked()
	s.mu.Unlock()
	s.serving.Wait()
	s.active.Wait()
}

func (s *Server) stopLocked() {
	if s.srv != nil {
		close(s.gone)
		_ = s.srv.Close()
		s.srv = nil
	}
}

// Down closes the listener and every open connection: requests in flight
// fail and new connections are refused until Up.
func (s *Server) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down || s.closed {
		return
	}
	s.down = true
	s.stopLocked()
}

// Up listens again on the same address after Down.
func (s *Server) Up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down || s.closed {
		return
	}
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		<-time.After(10 * time.Millisecond)
	}
	if err != nil {
		panic(fmt.Sprintf("gorushtest: listen again on %s: %v", s.addr, err))
	}
	s.down = false
	s.serve(ln)
}

// SetMaxNotification sets core.max_notification.
func (s *Server) SetMaxNotification(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxNotification = n
}

// EnablePlatforms sets exactly which platforms are enabled.
func (s *Server) EnablePlatforms(platforms ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = map[int]bool{}
	for _, p := range platforms {
		s.enabled[p] = true
	}
}

// SetSync sets core.sync: in async mode (false) logs are always empty.
func (s *Server) SetSync(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sync = on
}

// HideTokens sets log.hide_token: tokens in logs are masked with '*'.
func (s *Server) HideTokens(hide bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hideToken = hide
}

// SetAndroidMaxRetry sets android.max_retry: gorush resends every failed
// Android token that many times, and each attempt adds a log entry.
func (s *Server) SetAndroidMaxRetry(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.androidRetry = n
}

// FailToken makes every push to token fail with errText (reported in the
// logs in sync mode; Huawei failures are never logged, as in gorush). An
// empty errText removes the failure.
func (s *Server) FailToken(token, errText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setOrDelete(s.failing, token, errText)
}

// FailPlatform makes every notification of platform fail as a whole: one
// log entry with an empty token (like an FCM batch send error). An empty
// errText removes it.
func (s *Server) FailPlatform(platform int, errText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setOrDelete(s.failPlatform, platform, errText)
}

// setOrDelete sets m[k] to errText, or deletes k when errText is empty.
func setOrDelete[K comparable](m map[K]string, k K, errText string) {
	if errText == "" {
		delete(m, k)
		return
	}
	m[k] = errText
}

// FailNext answers the next n requests with status and body, before any
// validation and without accepting anything (a crash, or a proxy's error).
// body "" gives an empty body.
func (s *Server) FailNext(n, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{status, body})
	}
}

// QueueFullNext makes the next n valid requests behave as gorush does when
// its queue fills up: the first `queued` enabled notifications of the
// request are accepted (recorded), then it answers 500 with an empty body.
func (s *Server) QueueFullNext(n, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queueFull = append(s.queueFull, queued)
	}
}

// SetDelay delays every reply by d (0: none). Down and Close end the wait.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Received returns a copy of every notification accepted so far, in order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.received))
	for i, r := range s.received {
		r.Tokens = append([]string(nil), r.Tokens...)
		out[i] = r
	}
	return out
}

// Tokens returns every token of every accepted notification, in order.
func (s *Server) Tokens() []string {
	var out []string
	for _, r := range s.Received() {
		out = append(out, r.Tokens...)
	}
	return out
}

// Requests counts requests to the push route, whatever their outcome
// (requests that never reached the server while it was down excluded).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Counts sums the `counts` of every 200 reply.
func (s *Server) Counts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Dropped counts notifications dropped silently because their platform is
// not enabled or unknown.
func (s *Server) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Reset forgets what was received and counted; knobs are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received, s.requests, s.counts, s.dropped = nil, 0, 0, 0
}

func platformName(p int) string {
	switch p {
	case IOS:
		return "ios"
	case Android:
		return "android"
	case Huawei:
		return "huawei"
	}
	return ""
}

// ServeHTTP implements gorush's routes /api/push and /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Done()
	switch {
	case r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.WriteHeader(http.StatusOK)
		return
	case r.URL.Path == "/api/push" && r.Method == http.MethodPost:
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "404 page not found"})
		return
	}

	s.mu.Lock()
	s.requests++
	delay, gone := s.delay, s.gone
	var fail *failure
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		fail = &f
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-gone:
			t.Stop()
			return
		}
	}
	if fail != nil {
		if fail.body != "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(fail.status)
		_, _ = w.Write([]byte(fail.body))
		return
	}

	// gin's binding.JSON: json.Decoder.Decode, then `required` (not nil).
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Notifications == nil {
		abort(w, http.StatusBadRequest, MsgMissing)
		return
	}
	if len(req.Notifications) == 0 {
		abort(w, http.StatusBadRequest, MsgEmpty)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(req.Notifications) > s.maxNotification {
		abort(w, http.StatusBadRequest, fmt.Sprintf("Number of notifications(%d) over limit(%d)", len(req.Notifications), s.maxNotification))
		return
	}
	// filterEnabledNotifications: other platforms vanish without a trace.
	var kept []notification
	for _, n := range req.Notifications {
		if s.enabled[n.Platform] {
			kept = append(kept, n)
		} else {
			s.dropped++
		}
	}
	if len(s.queueFull) > 0 {
		q := s.queueFull[0]
		s.queueFull = s.queueFull[1:]
		for i := 0; i < q && i < len(kept); i++ {
			s.accept(kept[i])
		}
		// gorush: wg.Done() without Add panics; gin recovers with an empty 500.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	counts := 0
	logs := []LogEntry{}
	for _, n := range kept {
		s.accept(n)
		counts += len(n.Tokens)
		if n.Topic != "" {
			counts++
		}
		if s.sync {
			logs = append(logs, s.logsFor(n)...)
		}
	}
	s.counts += counts
	writeJSON(w, http.StatusOK, map[string]any{"counts": counts, "logs": logs, "success": "ok"})
}

func (s *Server) accept(n notification) {
	rec := Received{
		ID:         n.ID,
		Platform:   n.Platform,
		Tokens:     n.Tokens,
		Topic:      n.Topic,
		Title:      n.Title,
		Message:    n.Message,
		Priority:   n.Priority,
		Sound:      n.Sound,
		Badge:      n.Badge,
		Data:       n.Data,
		ThreadID:   n.ThreadID,
		CollapseID: n.CollapseID,
	}
	if n.Android != nil {
		rec.HasAndroid = true
		rec.CollapseKey = n.Android.CollapseKey
		rec.AndroidPriority = n.Android.Priority
	}
	s.received = append(s.received, rec)
}

// logsFor is what sync mode reports for n: failures only. Validation errors
// raised in gorush's workers (such as "no tokens") are not reported, nor is
// anything for Huawei.
func (s *Server) logsFor(n notification) []LogEntry {
	if n.Platform == Huawei {
		return nil
	}
	entry := func(token, errText string) LogEntry {
		if s.hideToken {
			token = strings.Repeat("*", len(token))
		}
		return LogEntry{ID: n.ID, Type: "failed-push", Platform: platformName(n.Platform), Token: token, Message: n.Message, Error: errText}
	}
	attempts := 1
	if n.Platform == Android {
		attempts += s.androidRetry
	}
	var out []LogEntry
	if e, ok := s.failPlatform[n.Platform]; ok && len(n.Tokens) > 0 {
		for range attempts {
			out = append(out, entry("", e))
		}
		return out
	}
	for range attempts {
		for _, t := range n.Tokens {
			if e, ok := s.failing[t]; ok {
				out = append(out, entry(t, e))
			}
		}
	}
	return out
}

func abort(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, nil
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Gorush-Version", "v1.22.0-fake")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
