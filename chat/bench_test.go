package chat_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
)

// BenchmarkSend measures the send pipeline (validate, group commit, seq
// allocation) on each store with 1, 16 and 256 concurrent senders, each
// writing to its own 1:1 conversation and waiting for its commit, as an
// MQTT QoS 1 sender does before its PUBACK. MQTT delivery is not included.
func BenchmarkSend(b *testing.B) {
	for _, backend := range testutil.Backends() {
		for _, senders := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/senders=%d", backend, senders), func(b *testing.B) {
				st := testutil.OpenStore(b, backend)
				ctx := context.Background()
				for _, uid := range append(names(senders), "sink") {
					if _, err := st.UpsertUser(ctx, &store.User{ID: uid}); err != nil {
						b.Fatal(err)
					}
				}
				svc := chat.New(chat.Options{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: config.Default().Chat})
				svc.Start()
				defer svc.Close()
				body := []byte(`{"text":"hello, this is a benchmark message of a typical length"}`)
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for i, uid := range names(senders) {
					n := b.N / senders
					if i < b.N%senders {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := 0; j < n; j++ {
							if _, err := svc.Send(ctx, &chat.Draft{From: uid, To: "sink", Type: "text", Body: body, CID: fmt.Sprintf("%s-%d", uid, j)}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				commits, msgs := svc.Stats()
				b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
				if msgs > 0 {
					b.ReportMetric(float64(commits)/float64(msgs), "commits/msg")
				}
			})
		}
	}
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%d", i)
	}
	return out
}
