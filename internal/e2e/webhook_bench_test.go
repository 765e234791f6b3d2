package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// BenchmarkSendWebhooks measures the latency of one HTTP send (stored,
// delivered over MQTT to a connected recipient, webhooks queued) with no
// webhook receiver, with a healthy one, and with a dead one (a handler that
// never answers, so its queue fills and events are dropped): a dead
// receiver must not slow sending down.
func BenchmarkSendWebhooks(b *testing.B) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	b.Cleanup(healthy.Close)
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	b.Cleanup(dead.Close)
	b.Cleanup(func() { close(release) })
	for _, c := range []struct {
		name string
		urls []string
	}{{"none", nil}, {"healthy", []string{healthy.URL}}, {"dead", []string{dead.URL}}, {"dead+healthy", []string{dead.URL, healthy.URL}}} {
		b.Run(c.name, func(b *testing.B) {
			srv := testutil.StartServer(b, "sqlite", func(cfg *config.Config) {
				for _, u := range c.urls {
					cfg.Webhooks = append(cfg.Webhooks, config.Webhook{URL: u, Secret: hookSecret})
				}
				cfg.Webhook.Queue, cfg.Webhook.Timeout = 1000, time.Second
			})
			ta, tb := srv.User(b, "alice"), srv.User(b, "bob")
			srv.Connect(b, "bob", "phone", tb)
			body := []byte(`{"to":"bob","type":"text","body":{"text":"hello, this is a benchmark message of a typical length"}}`)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest("POST", srv.HTTPURL+"/v1/messages", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+ta)
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				if resp.StatusCode != 201 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if len(c.urls) > 0 && c.urls[0] == dead.URL {
				s := srv.Webhooks.Stats(0)
				b.ReportMetric(float64(s.Dropped), "dropped")
				if s.Waiting > 1000 {
					b.Fatalf("dead receiver's queue holds %d", s.Waiting)
				}
			}
		})
	}
}
