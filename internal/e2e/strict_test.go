package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
)

// apnsToken is a well-formed APNs device token (64 hex digits) named by s.
func apnsToken(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Push tokens are checked against their platform's format before the store
// sees them: a token the column cannot hold (non-ASCII on MySQL) is 400
// invalid on both stores, never a 503, and nothing is registered.
func TestPushTokenFormats(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		fcm := "dXJlbC1hYmM6QVBBOTFiSG" + strings.Repeat("x", 100) + ":APA91b_-.Z9"
		refused := []struct{ name, platform, token, topic string }{
			{"non-ASCII android", "android", "tök-" + strings.Repeat("a", 20), ""},
			{"non-ASCII huawei", "huawei", "令牌" + strings.Repeat("1", 30), ""},
			{"non-hex ios", "ios", strings.Repeat("é", 32), ""},
			{"ios with letters beyond f", "ios", strings.Repeat("g", 64), ""},
			{"ios too short", "ios", strings.Repeat("a", 63), ""},
			{"ios too long", "ios", strings.Repeat("a", 201), ""},
			{"ios with colon", "ios", strings.Repeat("a", 62) + ":a", ""},
			{"android with space", "android", "abc def", ""},
			{"android with tab", "android", "abc\tdef", ""},
			{"android with NUL", "android", "abc\x00def", ""},
			{"android with slash", "android", "abc/def", ""},
			{"android with plus", "android", "abc+def=", ""},
			{"android too long", "android", strings.Repeat("a", 256), ""},
			{"huawei empty", "huawei", "", ""},
			{"non-ASCII topic", "ios", apnsToken("topic1"), "com.exämple.chat"},
			{"topic with space", "ios", apnsToken("topic2"), "com.example chat"},
			{"topic with newline", "ios", apnsToken("topic3"), "com.example\nchat"},
			{"topic too long", "ios", apnsToken("topic4"), strings.Repeat("c", 256)},
		}
		for _, tc := range refused {
			st, body := srv.API(t, "PUT", "/v1/devices/phone", ta, map[string]string{"platform": tc.platform, "token": tc.token, "topic": tc.topic})
			if st != 400 || !strings.Contains(string(body), `"code":"invalid"`) {
				t.Errorf("%s: %d %s, want 400 invalid", tc.name, st, body)
			}
		}
		var devs []struct {
			DeviceID string `json:"device_id"`
			Token    string `json:"token"`
			Topic    string `json:"topic"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &devs)
		if len(devs) != 0 {
			t.Fatalf("refused registrations were stored: %+v", devs)
		}

		upper := strings.ToUpper(apnsToken("upper"))
		accepted := []struct{ dev, platform, token, topic, stored string }{
			{"ios64", "ios", upper, "com.example.chat", apnsToken("upper")}, // hex in any case, stored in lower case
			{"ios200", "ios", strings.Repeat("0123456789", 20), "", strings.Repeat("0123456789", 20)},
			{"fcm", "android", fcm, "", fcm},
			{"fcm255", "android", strings.Repeat("A", 255), "", strings.Repeat("A", 255)},
			{"hms", "huawei", "0861234567890123450000012345CN01", "", "0861234567890123450000012345CN01"},
			{"topic255", "ios", apnsToken("t255"), strings.Repeat("c", 255), apnsToken("t255")},
		}
		for _, tc := range accepted {
			srv.MustAPI(t, 200, "PUT", "/v1/devices/"+tc.dev, ta, map[string]string{"platform": tc.platform, "token": tc.token, "topic": tc.topic}, nil)
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &devs)
		got := map[string]string{}
		for _, d := range devs {
			got[d.DeviceID] = d.Token
		}
		for _, tc := range accepted {
			if got[tc.dev] != tc.stored {
				t.Errorf("%s: stored token %q, want %q", tc.dev, got[tc.dev], tc.stored)
			}
		}
		if len(devs) != len(accepted) {
			t.Errorf("%d devices registered, want %d: %+v", len(devs), len(accepted), devs)
		}
		// The same APNs token in another case is the same token: it moves
		// to the device that registers it last, it is not registered twice.
		srv.MustAPI(t, 200, "PUT", "/v1/devices/again", ta, map[string]string{"platform": "ios", "token": apnsToken("upper")}, nil)
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &devs)
		for _, d := range devs {
			if d.DeviceID == "ios64" {
				t.Errorf("the lower-case token did not replace its upper-case registration: %+v", devs)
			}
		}
	})
}
