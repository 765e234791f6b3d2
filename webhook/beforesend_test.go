package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/webhook"
)

func TestParseAnswer(t *testing.T) {
	for _, c := range []struct {
		in     string
		allow  bool
		body   string
		reason string
		bad    bool
	}{
		{in: `{"allow":true}`, allow: true},
		{in: ` {"allow": true, "body": {"text": "hi"}} `, allow: true, body: `{"text": "hi"}`},
		{in: `{"allow":true,"body":null}`, allow: true},
		{in: `{"allow":false,"reason":"no links"}`, reason: "no links"},
		{in: `{"allow":false}`},
		{in: `{"allow":false,"body":{"text":"x"}}`},
		{in: `{"allow":true,"reason":"ignored","extra":[1,2]}`, allow: true},
		{in: `{"allow":false,"reason":"a\nb\t\u0000 c"}`, reason: "a b c"},
		{in: `{}`, bad: true},
		{in: `{"allow":"yes"}`, bad: true},
		{in: `{"allow":true,"allow":false}`, bad: true},
		{in: `{"allow":false,"reason":7}`, bad: true},
		{in: `[true]`, bad: true},
		{in: `{"allow":true}{}`, bad: true},
		{in: ``, bad: true},
		{in: `ok`, bad: true},
	} {
		v, err := webhook.ParseAnswer([]byte(c.in))
		if c.bad {
			if err == nil {
				t.Errorf("%s: accepted as %+v", c.in, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if v.Allow != c.allow || string(v.Body) != c.body || v.Reason != c.reason {
			t.Errorf("%s: got %+v body %s", c.in, v, v.Body)
		}
	}
	long, _ := json.Marshal(map[string]any{"allow": false, "reason": strings.Repeat("é", 1000)})
	if v, err := webhook.ParseAnswer(long); err != nil || utf8.RuneCountInString(v.Reason) != webhook.MaxReasonChars {
		t.Fatalf("long reason: %v %d", err, utf8.RuneCountInString(v.Reason))
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{`{"allow":true}`, `{"allow":false,"reason":"x"}`, `{"allow":true,"body":{"text":"y"}}`, `{"allow":1}`, `{"a":{"b":[1,2,{"c":null}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := webhook.ParseAnswer(b)
		if err != nil {
			return
		}
		if chat.CheckJSON(b) != nil {
			t.Fatalf("accepted non-strict JSON %q", b)
		}
		if v.Body != nil && (!v.Allow || !json.Valid(v.Body)) {
			t.Fatalf("body %q with allow %v", v.Body, v.Allow)
		}
		if v.Reason != "" && (v.Allow || utf8.RuneCountInString(v.Reason) > webhook.MaxReasonChars || !utf8.ValidString(v.Reason)) {
			t.Fatalf("reason %q", v.Reason)
		}
	})
}

// The hook is asked with a signed request and its answer applied; a hook
// that does not answer in time allows, unless fail-closed.
func TestBeforeSend(t *testing.T) {
	// Handlers run on their own goroutines (a timed-out one still runs when
	// the next request comes): the last request seen is kept under a lock.
	var mu sync.Mutex
	var last chat.ModerationRequest
	lastRequest := func() chat.ModerationRequest {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify([]byte(secret), r.Header.Get(webhook.HeaderTimestamp), body, r.Header.Get(webhook.HeaderSignature)) {
			w.WriteHeader(401)
			return
		}
		var req chat.ModerationRequest
		_ = json.Unmarshal(body, &req)
		mu.Lock()
		last = req
		mu.Unlock()
		switch req.CID {
		case "slow":
			<-r.Context().Done()
		case "500":
			w.WriteHeader(500)
		case "junk":
			_, _ = w.Write([]byte(`allow`))
		case "no":
			_, _ = w.Write([]byte(`{"allow":false,"reason":"not today"}`))
		default:
			_, _ = w.Write([]byte(`{"allow":true,"body":{"text":"clean"}}`))
		}
	}))
	t.Cleanup(srv.Close)
	for _, failClosed := range []bool{false, true} {
		bs := webhook.NewBeforeSend(config.BeforeSend{URL: srv.URL, Secret: secret, Timeout: 200 * time.Millisecond, FailClosed: failClosed}, quiet, nil, nil)
		ask := func(cid string) (*chat.Verdict, error) {
			return bs.Moderate(context.Background(), &chat.ModerationRequest{From: "alice", To: "bob", Type: "text",
				Body: json.RawMessage(`{"text":"hi"}`), CID: cid})
		}
		v, err := ask("ok")
		got := lastRequest()
		if err != nil || !v.Allow || string(v.Body) != `{"text":"clean"}` || got.From != "alice" || got.To != "bob" || string(got.Body) != `{"text":"hi"}` {
			t.Fatalf("rewrite: %+v %v (request %+v)", v, err, got)
		}
		if v, err := ask("no"); err != nil || v.Allow || v.Reason != "not today" {
			t.Fatalf("refusal: %+v %v", v, err)
		}
		for _, cid := range []string{"slow", "500", "junk"} {
			v, err := ask(cid)
			if failClosed {
				if !errors.Is(err, chat.ErrModeratorUnavailable) {
					t.Fatalf("fail-closed %s: %+v %v", cid, v, err)
				}
			} else if err != nil || !v.Allow || v.Body != nil {
				t.Fatalf("fail-open %s: %+v %v", cid, v, err)
			}
		}
	}
}
