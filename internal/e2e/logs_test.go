package e2e

import (
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/testutil"
)

// Refused connections cannot fill the log: client-supplied names are
// clipped, and repeated refusals of one cause are one line per interval
// with a count.
func TestRefusedConnectsLogBounded(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		cfg := testutil.TestConfig(t, backend)
		cfg.Log.Level = "info"
		logs := &testutil.LogBuffer{}
		srv := testutil.StartLogged(t, backend, cfg, logs)
		huge := strings.Repeat("a", 60<<10)
		for i := 0; i < 200; i++ {
			c := testutil.DialRaw(t, srv.MQTTAddr, 4)
			c.Write(c.RawConnect(huge, huge, "x"))
			if ack := c.Expect(packets.Connack, wait); ack.ReasonCode == 0 {
				t.Fatal("accepted")
			}
		}
		out := logs.String()
		refused := strings.Count(out, "connect refused")
		if refused < 1 || refused > 2 {
			t.Fatalf("%d 'connect refused' lines for 200 refusals of one cause", refused)
		}
		if len(out) > 16<<10 {
			t.Fatalf("log grew %d bytes for 200 refused connects", len(out))
		}
		if strings.Contains(out, strings.Repeat("a", 100)) {
			t.Fatal("a client-supplied value reached the log unclipped")
		}
	})
}

// The ids that mean something to the server cannot be user ids.
func TestReservedUserIDs(t *testing.T) {
	srv := testutil.StartServer(t, "sqlite")
	for _, id := range []string{"all", "system", "inline"} {
		if st, body := srv.API(t, "PUT", "/v1/users/"+id, testutil.ServiceKey, map[string]string{"name": "x"}); st != 400 || !strings.Contains(string(body), "reserved") {
			t.Errorf("PUT /v1/users/%s: %d %s", id, st, body)
		}
	}
}
