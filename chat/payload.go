package chat

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
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
// a text message whose bytes are the text. It checks the shape of the
// payload and the strict JSON rules (CheckRequestJSON) on all of it;
// Service.Send validates the message itself. The returned error is
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
	// One meaning for every parser: no key twice (also not in another
	// case, which encoding/json would match to the same field), no number
	// out of range, bounded nesting. Body and ext are re-encoded later.
	if err := CheckRequestJSON(trimmed); err != nil {
		return &Input{CID: probeCID(trimmed)}, err
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		cid := in.CID
		if cid == "" || len(cid) > 64 {
			cid = probeCID(trimmed)
		}
		return &Input{CID: cid}, fieldError(err, inputTypes)
	}
	if in.Kind == "" {
		in.Kind = KindMsg
	}
	switch in.Kind {
	case KindMsg, KindRead, KindTyping, KindRecall, KindEdit:
	default:
		return &in, errorf(CodeInvalid, "unknown kind %s", quoteShort(in.Kind))
	}
	return &in, nil
}

// inputTypes names what each field of a payload must be, for type errors.
var inputTypes = map[string]string{
	"kind": "a string", "cid": "a string", "type": "a string", "reply_to": "a string (a message id)",
	"mentions": "an array of user ids", "seq": "an integer", "id": "a string (a message id)",
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
// On success d.Body and d.Ext hold the validated values re-encoded (ext nil
// when absent or null): what is stored is never the client's raw bytes.
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
	if !msgTypes[d.Type] && d.Type != TypeRecall && d.Type != TypeEdit {
		return errorf(CodeInvalid, "unknown message type %s", quoteShort(d.Type))
	}
	if d.Type == "system" && !system {
		return errorf(CodeForbidden, "system messages are sent by the server only")
	}
	if d.Type == TypeRecall || d.Type == TypeEdit {
		return errorf(CodeForbidden, "%s records are stored by the server only: publish kind %s", d.Type, d.Type)
	}
	// The same bound as an MQTT payload, so the HTTP door accepts no more.
	// Checked before parsing, and again on what will be stored.
	if len(d.Body)+len(d.Ext) > limits.MaxPayload {
		return errorf(CodeTooLarge, "message is %d bytes, limit %d", len(d.Body)+len(d.Ext), limits.MaxPayload)
	}
	if len(d.Ext) > limits.MaxExt {
		return errorf(CodeTooLarge, "ext is %d bytes, limit %d", len(d.Ext), limits.MaxExt)
	}
	if d.ReplyTo != "" && (len(d.ReplyTo) > 32 || !ValidID(d.ReplyTo)) {
		return errorf(CodeInvalid, "reply_to is not a message id")
	}
	if len(d.Mentions) > 100 {
		return errorf(CodeInvalid, "at most 100 mentions")
	}
	for _, m := range d.Mentions {
		if m != "all" && !ValidID(m) {
			return errorf(CodeInvalid, "mention %s is not a user id", quoteShort(m))
		}
	}
	ext, err := validateExt(d.Ext)
	if err != nil {
		return err
	}
	body, err := validateBody(d.Type, d.Body, limits)
	if err != nil {
		return err
	}
	if len(body)+len(ext) > limits.MaxPayload {
		return errorf(CodeTooLarge, "message is %d bytes once encoded, limit %d", len(body)+len(ext), limits.MaxPayload)
	}
	if len(ext) > limits.MaxExt {
		return errorf(CodeTooLarge, "ext is %d bytes once encoded, limit %d", len(ext), limits.MaxExt)
	}
	d.Body, d.Ext = body, ext
	return nil
}

// isNull tells whether raw is absent or the JSON null.
func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// validateExt returns ext (any JSON value) strictly checked and re-encoded,
// or nil when absent or null: the one rule for the ext of messages, users
// and groups.
func validateExt(raw json.RawMessage) (json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	ext, err := CanonicalJSON(raw)
	if err != nil {
		return nil, errorf(CodeInvalid, "ext: %s", AsError(err).Message)
	}
	return ext, nil
}

// maxSafeInt is the largest integer every JSON client reads exactly
// (2^53 - 1, JavaScript's Number.MAX_SAFE_INTEGER).
const maxSafeInt = 1<<53 - 1

// Kinds of number fields in bodies.
const (
	numCount    = iota // an integer from 0 to maxSafeInt (size, width, height)
	numDuration        // a finite number, not negative (seconds)
	numLat             // a finite number from -90 to 90
	numLng             // a finite number from -180 to 180
)

// validateBody checks the body of each type and returns it re-encoded:
// strictly checked (CheckJSON), every known field of the right type and
// range, known number fields in their canonical form, other fields kept.
func validateBody(typ string, raw json.RawMessage, limits config.Chat) (json.RawMessage, error) {
	if isNull(raw) {
		return nil, errorf(CodeInvalid, "body is required")
	}
	v, err := decodeStrict(raw)
	if err != nil {
		return nil, errorf(CodeInvalid, "body: %s", AsError(err).Message)
	}
	if typ == "custom" {
		return encodeJSON(v)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(CodeInvalid, "body must be a JSON object")
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
	num := func(k string, required bool, kind int) error {
		v, ok := obj[k]
		if !ok || v == nil {
			if required {
				return errorf(CodeInvalid, "body.%s is required", k)
			}
			return nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return errorf(CodeInvalid, "body.%s must be a number", k)
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return errorf(CodeInvalid, "body.%s must be a finite number", k)
		}
		if f == 0 {
			f = 0 // no -0
		}
		switch kind {
		case numCount:
			if f != math.Trunc(f) || f < 0 || f > maxSafeInt {
				return errorf(CodeInvalid, "body.%s must be an integer from 0 to %d", k, int64(maxSafeInt))
			}
			obj[k] = int64(f)
			return nil
		case numDuration:
			if f < 0 {
				return errorf(CodeInvalid, "body.%s must not be negative", k)
			}
		case numLat:
			if f < -90 || f > 90 {
				return errorf(CodeInvalid, "body.%s must be from -90 to 90", k)
			}
		case numLng:
			if f < -180 || f > 180 {
				return errorf(CodeInvalid, "body.%s must be from -180 to 180", k)
			}
		}
		obj[k] = f
		return nil
	}
	var errs []error
	switch typ {
	case "text":
		errs = append(errs, str("text", true, limits.MaxTextChars))
	case "image":
		errs = append(errs, str("url", true, 2048), num("width", false, numCount), num("height", false, numCount), num("size", false, numCount))
	case "audio":
		errs = append(errs, str("url", true, 2048), num("duration", true, numDuration))
	case "video":
		errs = append(errs, str("url", true, 2048), num("duration", false, numDuration), str("thumb", false, 2048))
	case "file":
		errs = append(errs, str("url", true, 2048), str("name", true, 255), num("size", false, numCount))
	case "location":
		errs = append(errs, num("lat", true, numLat), num("lng", true, numLng), str("name", false, 255))
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
	return encodeJSON(obj)
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
