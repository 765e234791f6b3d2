package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mqim/mqim/store"
)

var deviceTests = []test{
	{"PutIsUpsert", testPutDevice},
	{"TokenMovesToNewOwner", testDeviceTokenMoves},
	{"Delete", testDeleteDevice},
	{"DevicesOf", testDevicesOf},
	{"DeleteToken", testDeleteToken},
}

func (f *fixture) putDevice(d store.Device) {
	f.t.Helper()
	if err := f.st.PutDevice(f.ctx, &d); err != nil {
		f.t.Fatalf("PutDevice(%+v): %v", d, err)
	}
}

// wantDevices checks a user's devices, ignoring UpdatedAt (which must be
// set) and order.
func (f *fixture) wantDevices(uid string, want ...store.Device) {
	f.t.Helper()
	got, err := f.st.Devices(f.ctx, uid)
	if err != nil {
		f.t.Fatalf("Devices(%s): %v", uid, err)
	}
	f.wantDeviceList("Devices("+uid+")", got, want...)
}

// wantDeviceList checks a list of devices, ignoring UpdatedAt (which must
// be set) and order.
func (f *fixture) wantDeviceList(what string, got []store.Device, want ...store.Device) {
	f.t.Helper()
	got = slices.Clone(got)
	for i := range got {
		if got[i].UpdatedAt == 0 {
			f.t.Errorf("%s: device %+v has no UpdatedAt", what, got[i])
		}
		got[i].UpdatedAt = 0
	}
	byID := func(a, b store.Device) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.DeviceID, b.DeviceID))
	}
	slices.SortFunc(got, byID)
	want = slices.Clone(want)
	slices.SortFunc(want, byID)
	if !slices.Equal(got, want) {
		f.t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// tokenHolders lists the devices, among those of users, registered with
// the token, as "user/device".
func (f *fixture) tokenHolders(platform, token string, users ...string) []string {
	f.t.Helper()
	ds, err := f.st.DevicesOf(f.ctx, users)
	if err != nil {
		f.t.Fatalf("DevicesOf(%v): %v", users, err)
	}
	var out []string
	for _, d := range ds {
		if d.Platform == platform && d.Token == token {
			out = append(out, d.UserID+"/"+d.DeviceID)
		}
	}
	return out
}

func testPutDevice(t *testing.T, f *fixture) {
	d1 := store.Device{UserID: "alice", DeviceID: "phone", Platform: "ios", Token: "tok-a", Topic: "com.example.app"}
	arg := d1
	if err := f.st.PutDevice(f.ctx, &arg); err != nil {
		t.Fatal(err)
	}
	if arg.UpdatedAt == 0 {
		t.Error("PutDevice did not set UpdatedAt")
	}
	f.wantDevices("alice", d1)

	// Same device: new token, no topic.
	d1b := store.Device{UserID: "alice", DeviceID: "phone", Platform: "ios", Token: "tok-b"}
	f.putDevice(d1b)
	f.wantDevices("alice", d1b)
	if hs := f.tokenHolders("ios", "tok-a", "alice"); len(hs) != 0 {
		t.Errorf("the replaced token is still registered: %v", hs)
	}

	d2 := store.Device{UserID: "alice", DeviceID: "tablet", Platform: "android", Token: "tok-c"}
	f.putDevice(d2)
	f.wantDevices("alice", d1b, d2)
	// Putting the same registration again changes nothing.
	f.putDevice(d2)
	f.wantDevices("alice", d1b, d2)
	// Device ids are per user.
	d3 := store.Device{UserID: "bob", DeviceID: "phone", Platform: "huawei", Token: "tok-d"}
	f.putDevice(d3)
	f.wantDevices("bob", d3)
	f.wantDevices("alice", d1b, d2)
	f.wantDevices("nobody")
}

func testDeviceTokenMoves(t *testing.T, f *fixture) {
	alice := store.Device{UserID: "alice", DeviceID: "phone", Platform: "android", Token: "tok-1"}
	keep := store.Device{UserID: "alice", DeviceID: "laptop", Platform: "android", Token: "tok-2"}
	f.putDevice(alice)
	f.putDevice(keep)

	// The phone changed hands: its token now belongs to bob.
	bob := store.Device{UserID: "bob", DeviceID: "phone2", Platform: "android", Token: "tok-1", Topic: "t"}
	f.putDevice(bob)
	f.wantDevices("bob", bob)
	f.wantDevices("alice", keep)
	if hs := f.tokenHolders("android", "tok-1", "alice", "bob"); len(hs) != 1 {
		t.Errorf("token tok-1 is registered to %v, want one device", hs)
	}

	// To another device of the same user.
	moved := store.Device{UserID: "bob", DeviceID: "phone3", Platform: "android", Token: "tok-1"}
	f.putDevice(moved)
	f.wantDevices("bob", moved)

	// An existing device taking over a token of another user's device.
	taker := store.Device{UserID: "alice", DeviceID: "laptop", Platform: "android", Token: "tok-1"}
	f.putDevice(taker)
	f.wantDevices("alice", taker)
	f.wantDevices("bob")
	if hs := f.tokenHolders("android", "tok-1", "alice", "bob"); len(hs) != 1 {
		t.Errorf("token tok-1 is registered to %v, want one device", hs)
	}
	if hs := f.tokenHolders("android", "tok-2", "alice", "bob"); len(hs) != 0 {
		t.Errorf("laptop's old token tok-2 is still registered: %v", hs)
	}

	// Long APNs-like tokens.
	long := store.Device{UserID: "carol", DeviceID: "d", Platform: "ios", Token: strings.Repeat("ab", 100)}
	f.putDevice(long)
	f.wantDevices("carol", long)
}

func testDeleteDevice(t *testing.T, f *fixture) {
	a1 := store.Device{UserID: "alice", DeviceID: "d1", Platform: "ios", Token: "t1"}
	a2 := store.Device{UserID: "alice", DeviceID: "d2", Platform: "ios", Token: "t2"}
	b1 := store.Device{UserID: "bob", DeviceID: "d1", Platform: "ios", Token: "t3"}
	f.putDevice(a1)
	f.putDevice(a2)
	f.putDevice(b1)

	if err := f.st.DeleteDevice(f.ctx, "alice", "d1"); err != nil {
		t.Fatalf("DeleteDevice(alice, d1): %v", err)
	}
	f.wantDevices("alice", a2)
	f.wantDevices("bob", b1) // same device id, other user: untouched

	err := f.st.DeleteDevice(f.ctx, "alice", "d1")
	wantErr(t, "DeleteDevice of a deleted device", err, store.ErrNotFound)
	err = f.st.DeleteDevice(f.ctx, "alice", "nope")
	wantErr(t, "DeleteDevice of an unknown device", err, store.ErrNotFound)
	err = f.st.DeleteDevice(f.ctx, "carol", "d1")
	wantErr(t, "DeleteDevice of another user's device id", err, store.ErrNotFound)
	f.wantDevices("bob", b1)

	// The token of a deleted device can be registered again.
	f.putDevice(store.Device{UserID: "carol", DeviceID: "x", Platform: "ios", Token: "t1"})
	f.wantDevices("carol", store.Device{UserID: "carol", DeviceID: "x", Platform: "ios", Token: "t1"})
}

func testDevicesOf(t *testing.T, f *fixture) {
	a1 := store.Device{UserID: "alice", DeviceID: "d1", Platform: store.PlatformIOS, Token: "t1", Topic: "com.example.app"}
	a2 := store.Device{UserID: "alice", DeviceID: "d2", Platform: store.PlatformAndroid, Token: "t2"}
	b1 := store.Device{UserID: "bob", DeviceID: "d1", Platform: store.PlatformHuawei, Token: "t3"}
	c1 := store.Device{UserID: "carol", DeviceID: "d1", Platform: store.PlatformIOS, Token: "t4"}
	for _, d := range []store.Device{a1, a2, b1, c1} {
		f.putDevice(d)
	}
	devicesOf := func(users []string) []store.Device {
		t.Helper()
		ds, err := f.st.DevicesOf(f.ctx, users)
		if err != nil {
			t.Fatalf("DevicesOf(%d users): %v", len(users), err)
		}
		return ds
	}
	f.wantDeviceList("DevicesOf(alice, bob, nobody)", devicesOf([]string{"alice", "bob", "nobody"}), a1, a2, b1)
	f.wantDeviceList("DevicesOf(carol)", devicesOf([]string{"carol"}), c1)
	f.wantDeviceList("DevicesOf(nil)", devicesOf(nil))
	// More users than one statement may bind.
	many := []string{"bob"}
	for i := range 9000 {
		many = append(many, fmt.Sprintf("ghost%04d", i))
	}
	f.wantDeviceList("DevicesOf(9002 users)", devicesOf(append(many, "carol")), b1, c1)
}

func testDeleteToken(t *testing.T, f *fixture) {
	a1 := store.Device{UserID: "alice", DeviceID: "d1", Platform: store.PlatformIOS, Token: "t1"}
	a2 := store.Device{UserID: "alice", DeviceID: "d2", Platform: store.PlatformAndroid, Token: "t1"}
	b1 := store.Device{UserID: "bob", DeviceID: "d1", Platform: store.PlatformIOS, Token: "t2"}
	for _, d := range []store.Device{a1, a2, b1} {
		f.putDevice(d)
	}
	if err := f.st.DeleteToken(f.ctx, store.PlatformIOS, "t1"); err != nil {
		t.Fatalf("DeleteToken(ios, t1): %v", err)
	}
	// The same token on another platform is another registration.
	f.wantDevices("alice", a2)
	f.wantDevices("bob", b1)
	// A token already gone, or never registered, is no error.
	for _, tok := range []string{"t1", "nope"} {
		if err := f.st.DeleteToken(f.ctx, store.PlatformIOS, tok); err != nil {
			t.Errorf("DeleteToken(ios, %s) of no registration: %v", tok, err)
		}
	}
	f.wantDevices("alice", a2)
	f.wantDevices("bob", b1)
}
