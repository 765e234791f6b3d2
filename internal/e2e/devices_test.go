package e2e

import (
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
)

func TestDevicesAndPresenceAPI(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		for _, tc := range []struct {
			name, method, path, tok string
			body                    any
			status                  int
		}{
			{"bad platform", "PUT", "/v1/devices/phone", ta, map[string]string{"platform": "windows", "token": "t"}, 400},
			{"platform as number", "PUT", "/v1/devices/phone", ta, `{"platform":1,"token":"t"}`, 400},
			{"token with space", "PUT", "/v1/devices/phone", ta, map[string]string{"platform": "ios", "token": "a b"}, 400},
			{"empty token", "PUT", "/v1/devices/phone", ta, map[string]string{"platform": "ios", "token": ""}, 400},
			{"bad device id", "PUT", "/v1/devices/a:b", ta, map[string]string{"platform": "ios", "token": apnsToken("t")}, 400},
			{"no credentials", "PUT", "/v1/devices/phone", "", map[string]string{"platform": "ios", "token": apnsToken("t")}, 401},
			{"service key without user", "GET", "/v1/devices", testutil.ServiceKey, nil, 400},
			{"service key, unknown user", "PUT", "/v1/devices/phone?user_id=nobody", testutil.ServiceKey, map[string]string{"platform": "ios", "token": apnsToken("t")}, 404},
			{"delete unknown", "DELETE", "/v1/devices/nope", ta, nil, 404},
			{"presence without ids", "GET", "/v1/presence", ta, nil, 400},
			{"presence bad id", "GET", "/v1/presence?user_ids=a,b:c", ta, nil, 400},
			{"presence too many", "GET", "/v1/presence?user_ids=" + strings.TrimSuffix(strings.Repeat("u,", 201), ","), ta, nil, 400},
		} {
			if st, body := srv.API(t, tc.method, tc.path, tc.tok, tc.body); st != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.name, st, body, tc.status)
			}
		}
		// Each user sees only their own devices; a token moving is re-bound.
		srv.MustAPI(t, 200, "PUT", "/v1/devices/phone", ta, map[string]string{"platform": "ios", "token": apnsToken("shared")}, nil)
		srv.MustAPI(t, 200, "PUT", "/v1/devices/phone", tb, map[string]string{"platform": "ios", "token": apnsToken("shared")}, nil)
		var mine []struct {
			UserID, DeviceID, Token string
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices", ta, nil, &mine)
		if len(mine) != 0 {
			t.Fatalf("alice still has the token bob took: %+v", mine)
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices?user_id=bob", testutil.ServiceKey, nil, &mine)
		if len(mine) != 1 || mine[0].Token != apnsToken("shared") {
			t.Fatalf("bob's devices: %+v", mine)
		}
		// A user token cannot name another user: ?user_id is the service
		// key's; alice still gets her own (empty) list.
		srv.MustAPI(t, 200, "GET", "/v1/devices?user_id=bob", ta, nil, &mine)
		if len(mine) != 0 {
			t.Fatalf("alice read bob's devices: %+v", mine)
		}
		srv.MustAPI(t, 204, "DELETE", "/v1/devices/phone", tb, nil, nil)

		var pres map[string]struct {
			Online   bool     `json:"online"`
			Devices  []string `json:"devices"`
			LastSeen int64    `json:"last_seen"`
		}
		srv.Connect(t, "bob", "web", tb)
		// Presence is for contacts: alice and bob share a conversation.
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": "hi"}}, nil)
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=alice,bob", ta, nil, &pres)
		if pres["alice"].Online || len(pres["alice"].Devices) != 0 || !pres["bob"].Online || strings.Join(pres["bob"].Devices, ",") != "web" || pres["bob"].LastSeen == 0 {
			t.Fatalf("presence: %+v", pres)
		}
	})
}
