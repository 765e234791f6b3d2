package chat

import (
	"context"
	"strings"

	"github.com/mqim/mqim/store"
)

// The push platforms gorush does not serve: Android vendor channels and
// "other" (anything else the product pushes itself). Their devices get the
// push.requested webhook event.
const (
	PlatformXiaomi = "xiaomi"
	PlatformOPPO   = "oppo"
	PlatformVivo   = "vivo"
	PlatformHonor  = "honor"
	PlatformOther  = "other"
)

// platforms are the push platforms a device may register for.
var platforms = map[string]bool{store.PlatformIOS: true, store.PlatformAndroid: true, store.PlatformHuawei: true,
	PlatformXiaomi: true, PlatformOPPO: true, PlatformVivo: true, PlatformHonor: true, PlatformOther: true}

const platformList = "ios, android, huawei, xiaomi, oppo, vivo, honor or other"

// maxTokenBytes is the size of the token and topic columns.
const maxTokenBytes = 255

// pushToken checks a push token against its platform's format and returns
// it as stored. APNs tokens are hex (64 characters today; up to 200
// accepted), stored in lower case so that one token is one row; FCM and HMS
// tokens are 1 to 255 characters from letters, digits and "-_:."; vendor
// registration ids (xiaomi, oppo, vivo, honor) may also hold the base64
// characters "+/=" (Xiaomi's do), and "other" tokens are any printable ASCII
// without spaces. Anything else could never be delivered, and would not fit
// the column everywhere.
func pushToken(platform, tok string) (string, error) {
	switch platform {
	case store.PlatformIOS:
		if len(tok) < 64 || len(tok) > 200 || !isHex(tok) {
			return "", errorf(CodeInvalid, "an ios token must be 64 to 200 hex digits")
		}
		return strings.ToLower(tok), nil
	case PlatformXiaomi, PlatformOPPO, PlatformVivo, PlatformHonor:
		if tok == "" || len(tok) > maxTokenBytes || !tokenChars(strings.NewReplacer("+", "", "/", "", "=", "").Replace(tok)) {
			return "", errorf(CodeInvalid, "a %s token must be 1 to %d characters from letters, digits and -_:.+/=", platform, maxTokenBytes)
		}
		return tok, nil
	case PlatformOther:
		if tok == "" || len(tok) > maxTokenBytes || !printableASCII(tok) {
			return "", errorf(CodeInvalid, "an other token must be 1 to %d printable ASCII characters without spaces", maxTokenBytes)
		}
		return tok, nil
	default:
		if tok == "" || len(tok) > maxTokenBytes || !tokenChars(tok) {
			return "", errorf(CodeInvalid, "a %s token must be 1 to %d characters from letters, digits and -_:.", platform, maxTokenBytes)
		}
		return tok, nil
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// tokenChars: letters, digits and "-_:." only.
func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

// printableASCII: bytes from "!" to "~" only (no spaces, no controls).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// DeviceReg is a device's push registration.
type DeviceReg struct {
	Platform string // ios, android, huawei, xiaomi, oppo, vivo, honor or other
	Token    string // the push token
	Topic    string // APNs topic (bundle id), optional
}

// PutDevice registers (or updates) the push token of uid's device dev, the
// part after "/" in the device's MQTT client id. A token registered before
// to another user or device moves here.
func (s *Service) PutDevice(ctx context.Context, uid, dev string, r DeviceReg) (*store.Device, error) {
	switch {
	case !ValidID(dev):
		return nil, errorf(CodeInvalid, "invalid device id")
	case !platforms[r.Platform]:
		return nil, errorf(CodeInvalid, "platform must be %s", platformList)
	}
	tok, err := pushToken(r.Platform, r.Token)
	if err != nil {
		return nil, err
	}
	if len(r.Topic) > maxTokenBytes || !printableASCII(r.Topic) {
		return nil, errorf(CodeInvalid, "topic must be printable ASCII without spaces, at most %d characters", maxTokenBytes)
	}
	r.Token = tok
	if _, err := s.User(ctx, uid); err != nil {
		return nil, err
	}
	d := &store.Device{UserID: uid, DeviceID: dev, Platform: r.Platform, Token: r.Token, Topic: r.Topic}
	if err := s.st.PutDevice(ctx, d); err != nil {
		return nil, AsError(err)
	}
	return d, nil
}

// DeleteDevice removes uid's device registration; not_found if none.
func (s *Service) DeleteDevice(ctx context.Context, uid, dev string) error {
	if !ValidID(dev) {
		return errorf(CodeInvalid, "invalid device id")
	}
	if err := s.st.DeleteDevice(ctx, uid, dev); err != nil {
		return AsError(err)
	}
	return nil
}

// Devices lists uid's registered devices.
func (s *Service) Devices(ctx context.Context, uid string) ([]store.Device, error) {
	ds, err := s.st.Devices(ctx, uid)
	if err != nil {
		return nil, AsError(err)
	}
	return ds, nil
}
