package broker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/bench"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/internal/token"
)

// TestIdleConnectionMemory measures what one idle authenticated connection
// costs a real mqim server (SQLite): MQIM_BENCH_CONNS raw MQTT 3.1.1
// clients (keepalive 0, clean session) connect over loopback as 32 devices
// per user (MQIM_BENCH_DEVICES_PER_USER), every session is set up (inbox, reply topic), and the server's
// memory growth is reported per connection: heap in use, goroutine stacks,
// and the process RSS. It is a measurement, not a test: skipped unless
// MQIM_BENCH_CONNS is set. The clients are raw sockets in the same process
// (a few hundred bytes each, included in the figures); the process's file
// limit bounds N to about half of `ulimit -n`. MQIM_BENCH_HEAPPROFILE names
// a file for a heap profile taken while every connection is open.
//
//	MQIM_BENCH_CONNS=9000 go test -run TestIdleConnectionMemory -v ./broker/
func TestIdleConnectionMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MQIM_BENCH_CONNS"))
	if n <= 0 {
		t.Skip("a measurement: set MQIM_BENCH_CONNS to the number of connections")
	}
	perUser := 32
	if v, _ := strconv.Atoi(os.Getenv("MQIM_BENCH_DEVICES_PER_USER")); v > 0 {
		perUser = v
	}
	srv := testutil.StartServer(t, "sqlite", func(c *config.Config) { c.MQTT.MaxDevicesPerUser = perUser })
	signer, err := token.NewSigner([]byte(testutil.TestJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	users := (n + perUser - 1) / perUser
	tokens := make([]string, users)
	for u := range tokens {
		uid := fmt.Sprintf("u%05d", u)
		srv.User(t, uid)
		if tokens[u], _, err = signer.Mint(uid, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	before := memNow()
	conns := make([]net.Conn, n)
	ids := make([]string, n)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const dialers = 8
	for w := 0; w < dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += dialers {
				uid := fmt.Sprintf("u%05d", i/perUser)
				ids[i] = fmt.Sprintf("%s/d%d", uid, i%perUser)
				c, err := bench.RawConnect(context.Background(), srv.MQTTAddr, nil, ids[i], uid, tokens[i/perUser])
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	connectTime := time.Since(start)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, func() error {
		for _, id := range ids {
			if !srv.Broker.Settled(id) {
				return fmt.Errorf("%s not set up", id)
			}
		}
		return nil
	})
	after := memNow()
	if p := os.Getenv("MQIM_BENCH_HEAPPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	per := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / float64(n) / 1024 }
	t.Logf("%d idle connections in %v (%.0f connects/s)", n, connectTime.Round(time.Millisecond), float64(n)/connectTime.Seconds())
	t.Logf("per connection: heap in use %.1f KB, stacks %.1f KB, heap+stacks %.1f KB, RSS %.1f KB (RSS after FreeOSMemory %.1f KB); goroutines +%.2f each",
		per(before.heap, after.heap), per(before.stack, after.stack), per(before.heap+before.stack, after.heap+after.stack),
		per(before.rss, after.rss), per(before.rssFreed, after.rssFreed), float64(after.goroutines-before.goroutines)/float64(n))
}

type memSample struct {
	heap, stack, rss, rssFreed uint64
	goroutines                 int
}

// memNow collects garbage until the heap settles (goroutine stacks shrink
// at each collection) and reads the process's memory: RSS before and after
// returning free pages to the OS.
func memNow() memSample {
	for i := 0; i < 12; i++ {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heap: ms.HeapInuse, stack: ms.StackInuse, rss: vmRSS(), goroutines: runtime.NumGoroutine()}
	debug.FreeOSMemory()
	s.rssFreed = vmRSS()
	return s
}

// vmRSS is the process's resident set (bytes), from /proc/self/status.
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
