package chat

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/mqim/mqim/internal/config"
)

// Payload kinds a client may publish (docs/protocol.md, "JSON payloads").
const (
	KindMsg    = "msg"
	KindRead   = "read"
	KindTyping = "typing"
	KindRecall = "recall"
	KindEdit   = "edit"
)

// Input is a decoded client publish.
type Input struct {
	Kind     string          `json:"kind"`
	CID      string          `json:"cid"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	ReplyTo  string          `json:"reply_to"`
	Mentions []string        `json:"mentions"`
	Ext      json.RawMessage `json:"ext"`
	Seq      int64           `json:"seq"`
	ID       string          `json:"id"`
}

// Decode parses a client payload. A payload that does not start with "{" is
// a text message whose bytes are the text. It checks only the shape of the
// payload; Service.Send validates the message itself. The returned error is
// always an *Error; cid is returned even then, when it could be read, so the
// refusal can name it.
func Decode(payload []byte, limits config.Chat) (*Input, error) {
	if len(payload) > limits.MaxPayload {
		return nil, errorf(CodeTooLarge, "payload is %d bytes, limit %d", len(payload), limits.MaxPayload)
	}
	if !utf8.Valid(payload) {
		return nil, errorf(CodeInvalid, "payload is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		body, _ := json.Marshal(map[string]string{"text": string(payload)})
		return &Input{Kind: KindMsg, Type: "text", Body: body}, nil
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return &Input{CID: probeCID(trimmed)}, errorf(CodeInvalid, "malformed JSON: %v", err)
	}
	if dec.More() {
		return &Input{CID: in.CID}, errorf(CodeInvalid, "trailing data after the JSON object")
	}
	if in.Kind == "" {
		in.Kind = KindMsg
	}
	switch in.Kind {
	case KindMsg, KindRead, KindTyping, KindRecall, KindEdit:
	default:
		return &in, errorf(CodeInvalid, "unknown kind %q", in.Kind)
	}
	return &in, nil
}

// probeCID recovers a top-level "cid" from a payload that does not parse as
// a whole (truncated, or bad later on), so the error event can name it.
func probeCID(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	depth := 1
	expectKey := true
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		switch v := t.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
			if depth == 1 {
				expectKey = true
			}
			continue
		case string:
			if depth == 1 && expectKey && v == "cid" {
				if t, err := dec.Token(); err == nil {
					if cid, ok := t.(string); ok && len(cid) <= 64 {
						return cid
					}
				}
				return ""
			}
		}
		if depth == 1 {
			expectKey = !expectKey
		}
	}
	return ""
}

// Message types (docs/protocol.md, "JSON payloads"). system is server-only.
var msgTypes = map[string]bool{
	"text": true, "image": true, "audio": true, "video": true, "file": true,
	"location": true, "card": true, "custom": true, "system": true,
}

// validateMessage checks type, body, cid, mentions, reply_to and ext
// against the limits. system messages are accepted only when system is true.
func validateMessage(d *Draft, limits config.Chat, system bool) error {
	if len(d.CID) > 64 {
		return errorf(CodeInvalid, "cid longer than 64 characters")
	}
	if !utf8.ValidString(d.CID) {
		return errorf(CodeInvalid, "cid is not valid UTF-8")
	}
	if d.Type == "" {
		return errorf(CodeInvalid, "type is required")
	}
	if !msgTypes[d.Type] {
		return errorf(CodeInvalid, "unknown message type %q", d.Type)
	}
	if d.Type == "system" && !system {
		return errorf(CodeForbidden, "system messages are sent by the server only")
	}
	// The same bound as an MQTT payload, so the HTTP door accepts no more.
	if len(d.Body)+len(d.Ext) > limits.MaxPayload {
		return errorf(CodeTooLarge, "message is %d bytes, limit %d", len(d.Body)+len(d.Ext), limits.MaxPayload)
	}
	if !utf8.Valid(d.Body) || !utf8.Valid(d.Ext) {
		return errorf(CodeInvalid, "body and ext must be valid UTF-8")
	}
	if len(d.Ext) > limits.MaxExt {
		return errorf(CodeTooLarge, "ext is %d bytes, limit %d", len(d.Ext), limits.MaxExt)
	}
	if len(d.Ext) > 0 && !json.Valid(d.Ext) {
		return errorf(CodeInvalid, "ext is not JSON")
	}
	if d.ReplyTo != "" && (len(d.ReplyTo) > 32 || !ValidID(d.ReplyTo)) {
		return errorf(CodeInvalid, "reply_to is not a message id")
	}
	if len(d.Mentions) > 100 {
		return errorf(CodeInvalid, "at most 100 mentions")
	}
	for _, m := range d.Mentions {
		if m != "all" && !ValidID(m) {
			return errorf(CodeInvalid, "mention %q is not a user id", m)
		}
	}
	body, err := validateBody(d.Type, d.Body, limits)
	if err != nil {
		return err
	}
	d.Body = body
	return nil
}

// validateBody checks the body of each type and returns it compacted.
func validateBody(typ string, raw json.RawMessage, limits config.Chat) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, errorf(CodeInvalid, "body is required")
	}
	var obj map[string]any
	if typ == "custom" {
		if !json.Valid(raw) {
			return nil, errorf(CodeInvalid, "body is not JSON")
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || obj == nil {
			return nil, errorf(CodeInvalid, "body must be a JSON object")
		}
	}
	str := func(k string, required bool, max int) error {
		v, ok := obj[k]
		if !ok || v == nil {
			if required {
				return errorf(CodeInvalid, "body.%s is required", k)
			}
			return nil
		}
		s, ok := v.(string)
		if !ok {
			return errorf(CodeInvalid, "body.%s must be a string", k)
		}
		if required && strings.TrimSpace(s) == "" {
			return errorf(CodeInvalid, "body.%s must not be empty", k)
		}
		if utf8.RuneCountInString(s) > max {
			return errorf(CodeTooLarge, "body.%s is longer than %d characters", k, max)
		}
		return nil
	}
	num := func(k string, required bool) error {
		v, ok := obj[k]
		if !ok || v == nil {
			if required {
				return errorf(CodeInvalid, "body.%s is required", k)
			}
			return nil
		}
		if _, ok := v.(json.Number); !ok {
			return errorf(CodeInvalid, "body.%s must be a number", k)
		}
		return nil
	}
	var errs []error
	switch typ {
	case "text":
		errs = append(errs, str("text", true, limits.MaxTextChars))
	case "image":
		errs = append(errs, str("url", true, 2048), num("width", false), num("height", false), num("size", false))
	case "audio":
		errs = append(errs, str("url", true, 2048), num("duration", true))
	case "video":
		errs = append(errs, str("url", true, 2048), num("duration", false), str("thumb", false, 2048))
	case "file":
		errs = append(errs, str("url", true, 2048), str("name", true, 255), num("size", false))
	case "location":
		errs = append(errs, num("lat", true), num("lng", true), str("name", false, 255))
	case "card":
		errs = append(errs, str("user_id", true, 64))
		if err := firstErr(errs); err == nil && !ValidID(obj["user_id"].(string)) {
			return nil, errorf(CodeInvalid, "body.user_id is not a user id")
		}
	case "system":
	}
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errorf(CodeInvalid, "body: %v", err)
	}
	return buf.Bytes(), nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
