package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
)

// Requester answers a request as user uid's HTTP call of method and target
// (path and query) would be answered, with the same checks, limits and
// body (api.Handler does). Requests over MQTT go through it, so every
// method has one implementation whichever door asks.
type Requester interface {
	Call(ctx context.Context, uid, method, target string, body []byte) (status int, header http.Header, out []byte)
}

// request is a client's publish on im/rpc.
type request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// params are every method's parameters, by their JSON (and HTTP query)
// names; each method reads those it takes.
type params struct {
	Conv         string          `json:"conv"`
	Group        string          `json:"group"`
	UserID       string          `json:"user_id"`
	UserIDs      []string        `json:"user_ids"`
	AfterSeq     *int64          `json:"after_seq"`
	BeforeSeq    *int64          `json:"before_seq"`
	Limit        *int64          `json:"limit"`
	Cursor       string          `json:"cursor"`
	UpdatedAfter json.RawMessage `json:"updated_after"` // Unix ms or RFC 3339, as over HTTP
	Seq          *int64          `json:"seq"`
	Pinned       *bool           `json:"pinned"`
	Muted        *bool           `json:"muted"`
	Hidden       *bool           `json:"hidden"`
}

// call is a request as its HTTP twin: method, target and body.
type call struct {
	method, target string
	body           any
}

// methods maps each request method to its HTTP twin (docs/protocol.md,
// "Requests over MQTT"). A missing required parameter is caught here so
// the error names it; everything else is checked by the twin.
var methods = map[string]func(p *params) (call, error){
	"conversations": func(p *params) (call, error) {
		q := url.Values{}
		if len(p.UpdatedAfter) > 0 && string(p.UpdatedAfter) != "null" {
			var s string
			if err := json.Unmarshal(p.UpdatedAfter, &s); err != nil {
				s = string(p.UpdatedAfter) // a number: Unix ms
			}
			q.Set("updated_after", s)
		}
		setInt(q, "limit", p.Limit)
		setString(q, "cursor", p.Cursor)
		return call{"GET", "/v1/conversations" + query(q), nil}, nil
	},
	"messages": func(p *params) (call, error) {
		if p.Conv == "" {
			return call{}, missing("conv")
		}
		q := url.Values{}
		setInt(q, "after_seq", p.AfterSeq)
		setInt(q, "before_seq", p.BeforeSeq)
		setInt(q, "limit", p.Limit)
		return call{"GET", "/v1/conversations/" + segment(p.Conv) + "/messages" + query(q), nil}, nil
	},
	"unread": func(*params) (call, error) { return call{"GET", "/v1/unread", nil}, nil },
	"read": func(p *params) (call, error) {
		if p.Conv == "" {
			return call{}, missing("conv")
		}
		return call{"POST", "/v1/conversations/" + segment(p.Conv) + "/read", map[string]*int64{"seq": p.Seq}}, nil
	},
	"conversation.update": func(p *params) (call, error) {
		if p.Conv == "" {
			return call{}, missing("conv")
		}
		return call{"PATCH", "/v1/conversations/" + segment(p.Conv),
			map[string]*bool{"pinned": p.Pinned, "muted": p.Muted, "hidden": p.Hidden}}, nil
	},
	"presence": func(p *params) (call, error) {
		return call{"GET", "/v1/presence" + query(url.Values{"user_ids": {strings.Join(p.UserIDs, ",")}}), nil}, nil
	},
	"user": func(p *params) (call, error) {
		if p.UserID == "" {
			return call{}, missing("user_id")
		}
		return call{"GET", "/v1/users/" + segment(p.UserID), nil}, nil
	},
	"group": func(p *params) (call, error) {
		if p.Group == "" {
			return call{}, missing("group")
		}
		return call{"GET", "/v1/groups/" + segment(p.Group), nil}, nil
	},
	"members": func(p *params) (call, error) {
		if p.Group == "" {
			return call{}, missing("group")
		}
		q := url.Values{}
		setInt(q, "limit", p.Limit)
		setString(q, "cursor", p.Cursor)
		return call{"GET", "/v1/groups/" + segment(p.Group) + "/members" + query(q), nil}, nil
	},
	"token": func(*params) (call, error) { return call{"POST", "/v1/token", nil}, nil },
}

// segment escapes a client-given id into one path segment: "." and ".."
// too, which would otherwise name another path.
func segment(id string) string {
	if id == "." || id == ".." {
		return strings.ReplaceAll(id, ".", "%2E")
	}
	return url.PathEscape(id)
}

func missing(name string) error { return chat.Errorf(chat.CodeInvalid, "params.%s is required", name) }

func setInt(q url.Values, k string, v *int64) {
	if v != nil {
		q.Set(k, strconv.FormatInt(*v, 10))
	}
}

func setString(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// reply is the answer on the device's reply topic.
type reply struct {
	Kind       string          `json:"kind"`
	ID         json.RawMessage `json:"id"`
	Result     json.RawMessage `json:"result,omitempty"`
	NextCursor string          `json:"next_cursor,omitempty"`
	Error      *replyError     `json:"error,omitempty"`
}

type replyError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// request answers a publish on im/rpc on the device's reply topic (with
// the MQTT 5 Correlation Data it came with). An MQTT 5 Response Topic other
// than the device's own reply topic is refused (0x87) and not answered.
// The PUBACK follows the reply: a bare success, or for MQTT 5 the reason
// code of the reply's error.
func (h *Chat) request(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	uid := string(cl.Properties.Username)
	to := chat.ReplyTopic(cl.ID)
	if rt := pk.Properties.ResponseTopic; rt != "" && rt != to {
		return h.ackRefused(cl, pk, &chat.Error{Code: chat.CodeForbidden, Message: "the response topic must be the device's own reply topic " + to})
	}
	id, res, hdr, err := h.answer(uid, pk.Payload)
	rep := reply{Kind: "reply", ID: id}
	if err != nil {
		e := chat.AsError(err)
		rep.Error = &replyError{Code: e.Code, Message: e.Message}
		if e.Code == chat.CodeRateLimited {
			rep.Error.RetryAfter = e.RetryAfterSeconds()
		}
	} else {
		rep.Result, rep.NextCursor = res, hdr.Get("X-Next-Cursor")
	}
	payload, _ := json.Marshal(rep)
	if rerr := h.o.Broker.Reply(to, payload, pk.Properties.CorrelationData); rerr != nil {
		h.Log.Warn("request: reply not delivered", "client_id", cl.ID, "error", rerr)
	}
	if err != nil {
		return h.ackRefused(cl, pk, chat.AsError(err))
	}
	return pk, packets.CodeSuccessIgnore
}

// answer runs one request: its id (JSON null when it has none) and the
// twin's result, or the error to reply with. Every request counts against
// the user's rate, well-formed or not.
func (h *Chat) answer(uid string, payload []byte) (id json.RawMessage, result json.RawMessage, hdr http.Header, err error) {
	id, c, perr := parseRequest(payload, h.o.Config.MaxPayload)
	if err := h.o.Chat.AdmitRequest(uid); err != nil {
		return id, nil, nil, err
	}
	if perr != nil {
		return id, nil, nil, perr
	}
	var body []byte
	if c.body != nil {
		body, _ = json.Marshal(c.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.o.Config.CommitTimeout+time.Second)
	defer cancel()
	st, hdr, out := h.o.Requests.Call(ctx, uid, c.method, c.target, body)
	if st >= 300 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(out, &e) != nil || e.Error.Code == "" {
			return id, nil, nil, chat.Errorf(chat.CodeUnavailable, "request failed")
		}
		refusal := &chat.Error{Code: e.Error.Code, Message: e.Error.Message}
		if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil {
			refusal.RetryAfter = time.Duration(ra) * time.Second
		}
		return id, nil, nil, refusal
	}
	if out = bytes.TrimSpace(out); len(out) == 0 {
		out = json.RawMessage("null")
	}
	return id, out, hdr, nil
}

// parseRequest reads a request payload (client bytes: strict JSON, at most
// max bytes) into its id (JSON null until one is read) and its HTTP twin.
func parseRequest(payload []byte, max int) (id json.RawMessage, c call, err error) {
	null := json.RawMessage("null")
	if len(payload) > max {
		return null, c, chat.Errorf(chat.CodeTooLarge, "request is %d bytes, limit %d", len(payload), max)
	}
	if err := chat.CheckRequestJSON(payload); err != nil {
		return null, c, err
	}
	var rq request
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&rq); err != nil {
		return null, c, chat.Errorf(chat.CodeInvalid, "a request is {\"id\": \"...\", \"method\": \"...\", \"params\": {...}}")
	}
	var sid string
	if json.Unmarshal(rq.ID, &sid) != nil || sid == "" || len(sid) > 64 {
		return null, c, chat.Errorf(chat.CodeInvalid, "id is required: a string of 1 to 64 bytes")
	}
	id = rq.ID
	build, ok := methods[rq.Method]
	if !ok {
		return id, c, chat.Errorf(chat.CodeInvalid, "unknown method %q", clip(rq.Method))
	}
	var p params
	if len(rq.Params) > 0 && string(rq.Params) != "null" {
		if err := json.Unmarshal(rq.Params, &p); err != nil {
			return id, c, chat.Errorf(chat.CodeInvalid, "params: %v", fieldName(err))
		}
	}
	c, err = build(&p)
	return id, c, err
}

// fieldName says which parameter had the wrong type.
func fieldName(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s has the wrong type", te.Field)
	}
	return "not an object of parameters"
}
