package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/mqim/mqim/chat"
)

// Handler is the HTTP API: an http.Handler for the HTTP listener, and Call
// for requests that reach the API another way.
type Handler struct {
	http.Handler
}

// callerKey marks a request made through Call: its actor is already known.
type callerKey struct{}

// Call answers one request as user uid, as if uid's token had come with
// it: the same routes, checks, limits and answers as over HTTP. The MQTT
// door's requests (im/rpc) come this way, so each method has one
// implementation whichever door asks; the caller has authenticated uid
// (an MQTT connection lives no longer than its token, and disabling a user
// ends it). target is the path and query ("/v1/conversations?limit=20"),
// body the JSON request body or nil. It blocks like the HTTP request would.
func (a *Handler) Call(ctx context.Context, uid, method, target string, body []byte) (status int, header http.Header, out []byte) {
	ctx = context.WithValue(ctx, callerKey{}, chat.Actor{UserID: uid})
	r, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		var b errorBody
		b.Error.Code, b.Error.Message = chat.CodeInvalid, "invalid request"
		out, _ := json.Marshal(b)
		return http.StatusBadRequest, http.Header{}, out
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.RemoteAddr = "mqtt"
	rec := &recorder{hdr: http.Header{}}
	a.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, rec.hdr, rec.body.Bytes()
}

// recorder keeps an answer in memory.
type recorder struct {
	hdr    http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.hdr }

func (r *recorder) WriteHeader(st int) {
	if r.status == 0 {
		r.status = st
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
