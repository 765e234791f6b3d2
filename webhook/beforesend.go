package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/retry"
)

// MaxAnswerBytes bounds a before_send answer; a longer one is unreadable.
const MaxAnswerBytes = 1 << 20

// MaxReasonChars bounds the reason shown to a refused sender; a longer one
// is cut.
const MaxReasonChars = 200

// BeforeSend is the before_send hook: it implements chat.Moderator by
// POSTing the message, signed like a webhook, and reading the answer
// (ParseAnswer). A timeout, a non-2xx answer or an unreadable one allows
// the message, or with FailClosed refuses it as unavailable.
type BeforeSend struct {
	url, secret string
	timeout     time.Duration
	failClosed  bool
	client      *http.Client
	log         *slog.Logger
	m           *Metrics
	warner      retry.Warner
}

var _ chat.Moderator = (*BeforeSend)(nil)

// NewBeforeSend returns the hook of cfg (whose URL must be set). rt nil:
// a clone of http.DefaultTransport.
func NewBeforeSend(cfg config.BeforeSend, log *slog.Logger, m *Metrics, rt http.RoundTripper) *BeforeSend {
	if m == nil {
		m = NewMetrics(nil)
	}
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64 // every send asks: keep connections warm
		rt = tr
	}
	return &BeforeSend{url: cfg.URL, secret: cfg.Secret, timeout: cfg.Timeout, failClosed: cfg.FailClosed,
		client: &http.Client{Transport: rt}, log: log, m: m}
}

// Moderate implements chat.Moderator.
func (b *BeforeSend) Moderate(ctx context.Context, r *chat.ModerationRequest) (*chat.Verdict, error) {
	start := time.Now()
	v, err := b.ask(ctx, r)
	result := "allow"
	switch {
	case err != nil:
		result = "error"
	case !v.Allow:
		result = "refuse"
	case v.Body != nil:
		result = "rewrite"
	}
	b.m.beforeSend.WithLabelValues(result).Observe(time.Since(start).Seconds())
	if err == nil {
		return v, nil
	}
	b.warner.Warn(b.log, "before_send: no usable answer", "fail_closed", b.failClosed, "error", err)
	if b.failClosed {
		return nil, chat.ErrModeratorUnavailable
	}
	return &chat.Verdict{Allow: true}, nil
}

func (b *BeforeSend) ask(ctx context.Context, r *chat.ModerationRequest) (*chat.Verdict, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var v *chat.Verdict
	status, err := postSigned(ctx, b.client, b.url, []byte(b.secret), body, func(resp *http.Response) error {
		if resp.StatusCode/100 != 2 {
			return nil
		}
		ans, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
		if err != nil {
			return redact(err)
		}
		if len(ans) > MaxAnswerBytes {
			return errors.New("answer too long")
		}
		v, err = ParseAnswer(ans)
		return err
	})
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("status %d", status)
	}
	return v, nil
}

// ParseAnswer reads a before_send answer: a strict JSON object (chat's
// rules: no key twice, ...) with a boolean "allow", and optionally "body"
// (any JSON, a rewrite when allowed; null means none) and "reason" (a
// string, shown to a refused sender, cut to MaxReasonChars). Other keys
// are ignored. The body is returned as given; the chat service validates
// it like a client's.
func ParseAnswer(b []byte) (*chat.Verdict, error) {
	if err := chat.CheckJSON(b); err != nil {
		return nil, err
	}
	var a struct {
		Allow  *bool           `json:"allow"`
		Body   json.RawMessage `json:"body"`
		Reason *string         `json:"reason"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	if a.Allow == nil {
		return nil, errors.New("answer: allow (a boolean) is required")
	}
	v := &chat.Verdict{Allow: *a.Allow}
	if v.Allow && len(a.Body) > 0 && string(a.Body) != "null" {
		v.Body = a.Body
	}
	if !v.Allow && a.Reason != nil {
		v.Reason = cleanReason(*a.Reason)
	}
	return v, nil
}

// cleanReason folds white space and control characters to single spaces
// and cuts the reason to MaxReasonChars characters.
func cleanReason(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if utf8.RuneCountInString(s) > MaxReasonChars {
		s = string([]rune(s)[:MaxReasonChars-1]) + "…"
	}
	return s
}
