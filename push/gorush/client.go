// Package gorush is a push.Notifier that sends through a gorush server
// (github.com/appleboy/gorush) over its HTTP API, POST /api/push.
//
// gorush must run with log.hide_token=false for dead tokens to be detected
// (with masked tokens the client cannot match a failure to a token, counts
// it as a plain failure and warns once), and with core.sync=true for
// per-token results to come back in the response at all; in async mode every
// accepted request reports no failures. docs/operations.md ("Offline push with gorush")
// says how to configure gorush for mqim.
package gorush

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/mqim/mqim/push"
	"github.com/mqim/mqim/store"
)

// DefaultTimeout bounds one request when New is given no timeout. gorush in
// sync mode answers only once every push of the request has finished, which
// took 7 s to 21 s with APNs/FCM unreachable: keep the timeout well above
// that, or a slow-but-successful request is reported as a network error and
// retried (sending it twice).
const DefaultTimeout = 30 * time.Second

// maxResponse bounds how much of a reply is read.
const maxResponse = 64 << 20

// apnsMaxCollapseID is APNs' limit on apns-collapse-id, in bytes. A longer
// one makes every push fail with BadCollapseId, so it is not sent.
const apnsMaxCollapseID = 64

// Client sends batches of push.Notification to gorush. It is safe for
// concurrent use.
type Client struct {
	url     string
	timeout time.Duration
	hc      *http.Client

	// log receives warnings about gorush's configuration (never tokens).
	log *slog.Logger

	warnedCounts atomic.Bool
	warnedMasked atomic.Bool
}

var _ push.Notifier = (*Client)(nil)

// New returns a client for the gorush server at baseURL (e.g.
// "http://gorush:8088") that logs to log. timeout bounds each request (0
// means DefaultTimeout); httpClient nil means a client with its own
// transport.
func New(baseURL string, timeout time.Duration, httpClient *http.Client, log *slog.Logger) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if httpClient == nil {
		httpClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Client{
		url:     strings.TrimRight(baseURL, "/") + PushPath,
		timeout: timeout,
		hc:      httpClient,
		log:     log,
	}
}

// CloseIdleConnections closes the HTTP client's idle connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// sent is what was sent under one notif_id, to match gorush's log entries.
type sent struct {
	platform string
	tokens   map[string]bool
}

// Send posts the batch as one request; the caller keeps it within gorush's
// core.max_notification (100 by default) or gets a 400. Notifications with
// no tokens are skipped, and those of an unknown platform are not sent and
// their tokens counted in Result.Failed (gorush would drop them silently).
//
// Errors are *push.SendError: a 4xx is final (Retry false); a 5xx or a
// network error or timeout is retryable; a 500 with an empty body is
// gorush's "queue full" failure, after which a prefix of the batch may have
// been queued (Partial).
func (c *Client) Send(ctx context.Context, batch []push.Notification) (push.Result, error) {
	var res push.Result
	req := Request{Notifications: make([]PushNotification, 0, len(batch))}
	byID := make(map[string]*sent, len(batch))
	expected := 0
	for _, n := range batch {
		tokens := make([]string, 0, len(n.Tokens))
		for _, t := range n.Tokens {
			if t != "" {
				tokens = append(tokens, t)
			}
		}
		pn, ok := toWire(n, tokens)
		if !ok {
			res.Failed += len(tokens)
			continue
		}
		if len(tokens) == 0 {
			continue
		}
		s := &sent{platform: n.Platform, tokens: make(map[string]bool, len(tokens))}
		for _, t := range tokens {
			s.tokens[t] = true
		}
		byID[pn.ID] = s
		expected += len(tokens)
		if pn.Topic != "" {
			expected++
		}
		req.Notifications = append(req.Notifications, pn)
	}
	if len(req.Notifications) == 0 {
		return res, nil
	}

	body, err := json.Marshal(req)
	if err != nil { // only with unencodable Data values
		return push.Result{}, &push.SendError{Err: fmt.Errorf("gorush: encode request: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return push.Result{}, &push.SendError{Err: fmt.Errorf("gorush: %w", err)}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		// The error names the URL (no tokens: they travel in the body).
		return push.Result{}, &push.SendError{Status: 0, Retry: true, Err: fmt.Errorf("gorush: %w", err)}
	}
	defer resp.Body.Close()
	// A read error matters only for a 2xx; otherwise the status decides.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if err != nil {
			// gorush accepted the batch; only its report was lost.
			// Resending would duplicate it, so this is not retryable.
			return push.Result{}, &push.SendError{Status: code, Err: fmt.Errorf("gorush: read reply: %w", err)}
		}
		var r Response
		if err := json.Unmarshal(raw, &r); err != nil {
			return push.Result{}, &push.SendError{Status: code, Err: fmt.Errorf("gorush: decode reply: %w", err)}
		}
		if r.Counts < expected && c.warnedCounts.CompareAndSwap(false, true) {
			c.log.Warn("gorush counted fewer tokens than were sent: a platform may not be enabled in gorush, whose notifications it drops silently (logged once)",
				"sent", expected, "counted", r.Counts)
		}
		c.collect(&res, r.Logs, byID)
		return res, nil
	case code >= 400 && code < 500:
		return push.Result{}, &push.SendError{Status: code, Err: fmt.Errorf("gorush: HTTP %d: %s", code, errorText(raw))}
	case code >= 500:
		empty := len(bytes.TrimSpace(raw)) == 0
		return push.Result{}, &push.SendError{
			Status:  code,
			Retry:   true,
			Partial: code == http.StatusInternalServerError && empty,
			Err:     fmt.Errorf("gorush: HTTP %d: %s", code, errorText(raw)),
		}
	default:
		return push.Result{}, &push.SendError{Status: code, Err: fmt.Errorf("gorush: unexpected HTTP %d", code)}
	}
}

// collect turns gorush's failure logs into dead tokens and a failure count.
// Dead tokens are reported once each, only for tokens of this batch, and
// only for the exact permanent error strings; a token that is dead is not
// also counted as failed. Android retries in gorush repeat entries, so
// failures are counted once per (notification, token).
func (c *Client) collect(res *push.Result, logs []LogEntry, byID map[string]*sent) {
	type key struct{ id, token string }
	type tok struct{ platform, token string }
	dead := map[tok]bool{}
	failed := map[key]int{}
	for _, e := range logs {
		if e.Type != "" && e.Type != FailedPush {
			continue
		}
		id, s := e.ID, byID[e.ID]
		if s == nil {
			id, s = find(byID, e.Platform, e.Token)
		}
		if e.Token == "" {
			// A failure of a whole notification (e.g. FCM send error).
			n := 1
			if s != nil {
				n = len(s.tokens)
			}
			failed[key{id, ""}] = n
			continue
		}
		known := s != nil && s.tokens[e.Token]
		if IsPermanent(e.Error) && known {
			if !dead[tok{s.platform, e.Token}] {
				dead[tok{s.platform, e.Token}] = true
				res.Dead = append(res.Dead, push.DeadToken{Platform: s.platform, Token: e.Token, Reason: e.Error})
			}
			continue
		}
		if !known && c.warnedMasked.CompareAndSwap(false, true) {
			c.log.Warn("gorush reported a failure for a token that was not sent: is log.hide_token true in gorush? Dead tokens cannot be pruned then (logged once)",
				"platform", e.Platform)
		}
		failed[key{id, e.Token}] = 1
	}
	for k, n := range failed {
		if k.token != "" && byID[k.id] != nil && dead[tok{byID[k.id].platform, k.token}] {
			continue
		}
		res.Failed += n
	}
}

// find looks a token up among the batch's notifications of a platform, for
// log entries without a usable notif_id.
func find(byID map[string]*sent, platform, token string) (string, *sent) {
	for id, s := range byID {
		if (platform == "" || s.platform == platform) && s.tokens[token] {
			return id, s
		}
	}
	return "", nil
}

// toWire maps a notification to gorush's request format. ok is false for an
// unknown platform.
func toWire(n push.Notification, tokens []string) (PushNotification, bool) {
	pn := PushNotification{
		ID:      ulid.Make().String(),
		Tokens:  tokens,
		Title:   n.Title,
		Message: n.Body,
		Data:    n.Data,
	}
	switch n.Platform {
	case store.PlatformIOS:
		pn.Platform = PlatformIOS
		pn.Topic = n.Topic
		badge := max(n.Badge, 0)
		pn.Badge = &badge
		pn.Sound = "default"
		pn.ThreadID = n.ThreadID
		if len(n.ThreadID) <= apnsMaxCollapseID {
			pn.CollapseID = n.ThreadID
		}
	case store.PlatformAndroid:
		pn.Platform = PlatformAndroid
		pn.Priority = "high"
		pn.Android = &AndroidConfig{CollapseKey: n.ThreadID, Priority: "high"}
	case store.PlatformHuawei:
		pn.Platform = PlatformHuawei
	default:
		return PushNotification{}, false
	}
	return pn, true
}

// errorText extracts gorush's error message from a reply body, or a short
// prefix of a foreign body (a proxy's error page).
func errorText(raw []byte) string {
	var eb ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Message != "" {
		return eb.Message
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "empty body"
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// PlatformName maps gorush's platform number to push's platform name ("" if
// unknown).
func PlatformName(p int) string {
	switch p {
	case PlatformIOS:
		return store.PlatformIOS
	case PlatformAndroid:
		return store.PlatformAndroid
	case PlatformHuawei:
		return store.PlatformHuawei
	}
	return ""
}
