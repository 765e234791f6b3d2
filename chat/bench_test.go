package chat_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
)

// BenchmarkSend measures the send pipeline (validate, group commit, seq
// allocation) on each store with 1, 16 and 256 concurrent senders, each
// writing to its own 1:1 conversation and waiting for its commit, as an
// MQTT QoS 1 sender does before its PUBACK. MQTT delivery is not included.
// Besides throughput it reports the process's CPU time per message, which
// other load on the machine disturbs less.
func BenchmarkSend(b *testing.B) {
	for _, backend := range testutil.Backends() {
		for _, senders := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/senders=%d", backend, senders), func(b *testing.B) {
				st := testutil.OpenStore(b, backend)
				addUsers(b, st, append(names(senders), "sink")...)
				svc := startService(b, st, 0)
				ctx := context.Background()
				body := []byte(`{"text":"hello, this is a benchmark message of a typical length"}`)
				b.ResetTimer()
				cpu0 := cpuTime(b)
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
				cpu := cpuTime(b) - cpu0
				b.StopTimer()
				commits, msgs := svc.Stats()
				b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
				if msgs > 0 {
					b.ReportMetric(float64(cpu.Microseconds())/float64(msgs), "cpu-µs/msg")
				}
				if msgs > 0 {
					b.ReportMetric(float64(commits)/float64(msgs), "commits/msg")
				}
			})
		}
	}
}

// cpuTime is the CPU time (user and system) the process has used so far:
// per message, a measure of cost that the machine's other load disturbs
// less than throughput.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%d", i)
	}
	return out
}
