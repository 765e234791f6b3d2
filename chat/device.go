package chat

import (
	"context"
	"strings"

	"github.com/mqim/mqim/store"
)

// platforms are the push platforms a device may register for.
var platforms = map[string]bool{store.PlatformIOS: true, store.PlatformAndroid: true, store.PlatformHuawei: true}

// DeviceReg is a device's push registration.
type DeviceReg struct {
	Platform string // ios, android or huawei
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
		return nil, errorf(CodeInvalid, "platform must be ios, android or huawei")
	case r.Token == "" || len(r.Token) > 255 || strings.ContainsAny(r.Token, " \t\r\n"):
		return nil, errorf(CodeInvalid, "token must be 1-255 characters without spaces")
	case len(r.Topic) > 255:
		return nil, errorf(CodeInvalid, "topic longer than 255 characters")
	}
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
