// Package api is mqim's HTTP API (/v1, JSON) for the product backend and for
// clients: plain net/http routing, bearer-token authentication (a user's
// access token or the service key), and one error format. It is a door:
// handlers translate requests into chat.Service calls and answers into JSON;
// the rules live in package chat.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/token"
)

// Signer mints access tokens.
type Signer interface {
	Mint(userID string, now time.Time, ttl time.Duration) (string, time.Time, error)
}

// Presence tells which devices of a user are connected (broker.Broker does).
type Presence interface {
	// Presence returns the MQTT client ids of uid connected now and when uid
	// was last connected (Unix ms, 0 if never).
	Presence(uid string) (clientIDs []string, lastSeen int64)
}

// Options are the handler's collaborators; all are required but Metrics.
type Options struct {
	Chat           *chat.Service
	Tokens         Signer
	ServiceKeyHash string // hex SHA-256 of the service key
	Auth           config.Auth
	HTTP           config.HTTP
	Log            *slog.Logger
	Presence       Presence
	// Ready tells whether the server can serve (store reachable, broker
	// listening), for /readyz; the error says what is not.
	Ready func(ctx context.Context) error
	// Metrics serves /metrics (Prometheus); nil: not served.
	Metrics http.Handler
	// Demo serves the web chat client under /demo/ (http.demo); nil: not
	// served.
	Demo http.Handler
}

type handler struct {
	Options
}

// New returns the whole HTTP API as one handler.
func New(o Options) *Handler {
	h := &handler{Options: o}
	mux := http.NewServeMux()
	for _, rt := range h.routes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, chat.Errorf(chat.CodeNotFound, "no such endpoint"))
	})
	return &Handler{Handler: h.recoverer(h.cors(h.canonical(mux)))}
}

// route is one endpoint: a net/http pattern ("METHOD /path/{wildcard}")
// and its handler, authentication included.
type route struct {
	pattern string
	handler http.Handler
}

// routes is every endpoint the API serves, the one list New registers and
// the OpenAPI document (openapi.yaml) is tested against.
func (h *handler) routes() []route {
	fn := func(f http.HandlerFunc) http.Handler { return f }
	rs := []route{
		{"GET /healthz", fn(h.healthz)},
		{"GET /readyz", fn(h.readyz)},
		{"GET /v1/openapi.yaml", fn(h.openapi)},

		{"POST /v1/login", fn(h.login)},
		{"POST /v1/token", h.auth(h.renewToken)},
		{"PUT /v1/users/{uid}", h.service(h.putUser)},
		{"GET /v1/users/{uid}", h.auth(h.getUser)},
		{"POST /v1/users/{uid}/tokens", h.service(h.mintToken)},

		{"POST /v1/groups", h.auth(h.createGroup)},
		{"GET /v1/groups/{gid}", h.auth(h.getGroup)},
		{"POST /v1/groups/{gid}/members", h.auth(h.addMembers)},
		{"DELETE /v1/groups/{gid}/members/{uid}", h.auth(h.removeMember)},
		{"PATCH /v1/groups/{gid}/members/{uid}", h.auth(h.updateMember)},
		{"PATCH /v1/groups/{gid}", h.auth(h.patchGroup)},
		{"DELETE /v1/groups/{gid}", h.auth(h.dissolveGroup)},
		{"POST /v1/groups/{gid}/transfer", h.auth(h.transferGroup)},
		{"GET /v1/groups/{gid}/members", h.auth(h.listMembers)},
		{"POST /v1/groups/{gid}/join", h.auth(h.joinGroup)},
		{"GET /v1/groups/{gid}/requests", h.auth(h.listRequests)},
		{"POST /v1/groups/{gid}/requests/{uid}", h.auth(h.answerRequest)},

		{"POST /v1/messages", h.auth(h.sendMessage)},
		{"GET /v1/messages/search", h.auth(h.searchMessages)},
		{"POST /v1/messages/{id}/recall", h.auth(h.recallMessage)},
		{"PATCH /v1/messages/{id}", h.auth(h.editMessage)},
		{"GET /v1/conversations", h.auth(h.listConversations)},
		{"GET /v1/conversations/{conv}/messages", h.auth(h.listMessages)},
		{"POST /v1/conversations/{conv}/read", h.auth(h.markRead)},
		{"PATCH /v1/conversations/{conv}", h.auth(h.patchConversation)},
		{"GET /v1/unread", h.auth(h.unread)},

		{"PUT /v1/devices/{device_id}", h.auth(h.putDevice)},
		{"DELETE /v1/devices/{device_id}", h.auth(h.deleteDevice)},
		{"GET /v1/devices", h.auth(h.listDevices)},
		{"GET /v1/presence", h.auth(h.presence)},

		{"POST /v1/friends/requests", h.auth(h.requestFriend)},
		{"GET /v1/friends/requests", h.auth(h.listFriendRequests)},
		{"POST /v1/friends/requests/{from}", h.auth(h.answerFriendRequest)},
		{"GET /v1/friends", h.auth(h.listFriends)},
		{"DELETE /v1/friends/{uid}", h.auth(h.unfriend)},
		{"PUT /v1/blocks/{uid}", h.auth(h.block)},
		{"DELETE /v1/blocks/{uid}", h.auth(h.unblock)},
		{"GET /v1/blocks", h.auth(h.listBlocks)},
	}
	if h.Metrics != nil {
		rs = append(rs, route{"GET /metrics", h.metrics(h.Metrics)})
	}
	if h.Demo != nil {
		rs = append(rs, route{"GET /demo/", h.Demo}) // the whole /demo/ tree: static files, no token
	}
	return rs
}

// canonical answers a path that net/http's mux would redirect to its cleaned
// form (empty, "." or ".." segments) with an error instead: the 307 keeps the
// method, so "DELETE /v1/groups/g/members/.." would land on
// "DELETE /v1/groups/g". Ids "." and ".." must be sent escaped (%2E).
func (h *handler) canonical(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		clean := path.Clean("/" + p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if r.Method != http.MethodConnect && p != clean {
			h.fail(w, r, chat.Errorf(chat.CodeInvalid, "non-canonical path: no empty, . or .. segments (escape such ids as %%2E)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ---- errors

// status maps chat error codes to HTTP statuses; the one place that does.
var status = map[string]int{
	chat.CodeInvalid:      http.StatusBadRequest,
	chat.CodeUnauthorized: http.StatusUnauthorized,
	chat.CodeTooLarge:     http.StatusRequestEntityTooLarge,
	chat.CodeForbidden:    http.StatusForbidden,
	chat.CodeNotMember:    http.StatusForbidden,
	chat.CodeMuted:        http.StatusForbidden,
	chat.CodeBlocked:      http.StatusForbidden,
	chat.CodeNotFound:     http.StatusNotFound,
	chat.CodeConflict:     http.StatusConflict,
	chat.CodeRateLimited:  http.StatusTooManyRequests,
	chat.CodeUnavailable:  http.StatusServiceUnavailable,
}

// codeInternal answers a handler panic: a bug, never bad input.
const codeInternal = "internal"

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail writes any error as the one error body, with the status of its code.
// An unauthorized answer names the scheme (RFC 6750 §3).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := chat.AsError(err)
	st, ok := status[e.Code]
	if !ok {
		st = http.StatusInternalServerError
	}
	if st >= 500 {
		h.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	if e.Code == chat.CodeRateLimited {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds()))
	}
	if st == http.StatusUnauthorized {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mqim"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mqim", error="invalid_token"`)
		}
	}
	var b errorBody
	b.Error.Code, b.Error.Message = e.Code, e.Message
	writeJSON(w, st, b)
}

// reply answers a chat call: its error through fail, or the view (nil: no
// body) with status st. view runs only on success, so it may use results
// that are nil on failure.
func (h *handler) reply(w http.ResponseWriter, r *http.Request, st int, err error, view func() any) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if view == nil {
		w.WriteHeader(st)
		return
	}
	writeJSON(w, st, view())
}

func writeJSON(w http.ResponseWriter, st int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.Log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				h.fail(w, r, chat.Errorf(codeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// decode reads a JSON body into v, capped at the configured size, after the
// strict JSON check (chat.CheckRequestJSON). An empty body decodes as {}
// when allowEmpty.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.HTTP.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, chat.Errorf(chat.CodeTooLarge, "body larger than %d bytes", mbe.Limit))
		} else {
			h.fail(w, r, chat.Errorf(chat.CodeInvalid, "cannot read body"))
		}
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if allowEmpty {
			return true
		}
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "a JSON body is required"))
		return false
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259); raw fields (ext, body) would carry the
		// bad bytes into the store, where MySQL refuses them.
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "invalid JSON: not UTF-8"))
		return false
	}
	// One meaning for every parser (docs/http-api.md, "Conventions"): no key
	// twice, no number out of range, bounded nesting.
	if err := chat.CheckRequestJSON(body); err != nil {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "invalid JSON: %s", chat.AsError(err).Message))
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(v); err != nil {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "invalid JSON: %s", jsonError(err)))
		return false
	}
	if strings.TrimSpace(string(body[dec.InputOffset():])) != "" {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "invalid JSON: trailing data"))
		return false
	}
	return true
}

// jsonError describes a decoding error without echoing the input.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("field %q must be %s", te.Field, jsonType(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "malformed body"
}

// jsonType names a Go type the way a JSON client knows it.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// ---- authentication

type ctxKey struct{}

// actor returns who the request acts as.
func actor(r *http.Request) chat.Actor { return r.Context().Value(ctxKey{}).(chat.Actor) }

// auth accepts a user token or the service key.
func (h *handler) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, a)))
	})
}

// service accepts only the service key.
func (h *handler) service(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		if !a.Service {
			h.fail(w, r, chat.Errorf(chat.CodeForbidden, "this endpoint needs the service key"))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, a)))
	})
}

func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) (chat.Actor, bool) {
	if a, ok := r.Context().Value(callerKey{}).(chat.Actor); ok {
		return a, true // Call: authenticated by the door that called
	}
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" { // the scheme is case-insensitive (RFC 7235)
		r.Header.Del("Authorization") // so fail names no token error
		h.fail(w, r, chat.Errorf(chat.CodeUnauthorized, "missing bearer token"))
		return chat.Actor{}, false
	}
	if token.KeyMatches(raw, h.ServiceKeyHash) {
		return chat.Actor{Service: true}, true
	}
	// A bearer token is no login attempt (an HS256 key is not guessed): no
	// claimed user, no address, nothing counted against either.
	u, _, err := h.Chat.Authenticate(r.Context(), "", raw, "")
	if err != nil {
		h.fail(w, r, err)
		return chat.Actor{}, false
	}
	return chat.Actor{UserID: u.ID}, true
}

// actingUser is the user a request acts for: the token's user, or for the
// service key the user named by ?user_id= (or the given fallback).
func (h *handler) actingUser(w http.ResponseWriter, r *http.Request, named string) (string, bool) {
	a := actor(r)
	if !a.Service {
		if named != "" && named != a.UserID {
			h.fail(w, r, chat.Errorf(chat.CodeForbidden, "a user token acts only as its own user"))
			return "", false
		}
		return a.UserID, true
	}
	if named == "" {
		named = r.URL.Query().Get("user_id")
	}
	if !chat.ValidID(named) {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "the service key must name a valid user (user_id)"))
		return "", false
	}
	return named, true
}

// ---- operations

// metrics guards /metrics: the service key or http.metrics_token as the
// bearer token, unless http.metrics_public.
func (h *handler) metrics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.HTTP.MetricsPublic {
			scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			raw = strings.TrimSpace(raw)
			ok := strings.EqualFold(scheme, "Bearer") && raw != "" && (token.KeyMatches(raw, h.ServiceKeyHash) ||
				(h.HTTP.MetricsToken != "" && subtle.ConstantTimeCompare([]byte(raw), []byte(h.HTTP.MetricsToken)) == 1))
			if !ok {
				h.fail(w, r, chat.Errorf(chat.CodeUnauthorized, "metrics need the service key or the metrics token"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
