package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/bench"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// BenchmarkGroupFanout measures group delivery in-process (SQLite): one
// group of 500 members, each with one raw MQTT 3.1.1 device that
// acknowledges every event, and 5 of them sending QoS 1 messages, each as
// soon as its last one was acknowledged; b.N messages in all. It reports
// deliveries per second (each message reaches all 500 devices, the
// senders' own included) until the last delivery arrived, and the CPU time
// the process spent per delivery (server and clients: the clients' share is
// the same in every run, and the figure does not depend on what else the
// machine runs, unlike the rate).
//
//	go test -run '^$' -bench BenchmarkGroupFanout -benchtime 2000x ./broker/
func BenchmarkGroupFanout(b *testing.B) {
	const members, senders = 500, 5
	srv := testutil.StartServer(b, "sqlite", func(c *config.Config) { c.MQTT.MaxWritesPending = 1024 })
	uids := make([]string, members)
	toks := make([]string, members)
	for i := range uids {
		uids[i] = fmt.Sprintf("m%03d", i)
		toks[i] = srv.User(b, uids[i])
	}
	srv.MustAPI(b, 201, "POST", "/v1/groups", testutil.ServiceKey,
		map[string]any{"id": "big", "name": "Big", "owner": uids[0], "members": uids[1:]}, nil)
	var got atomic.Int64
	want := int64(b.N) * members
	done := make(chan struct{})
	var closeOnce sync.Once
	for i, uid := range uids {
		c, err := bench.RawConnect(context.Background(), srv.MQTTAddr, nil, uid+"/r", uid, toks[i])
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		go readAcking(c, func() {
			if got.Add(1) == want {
				closeOnce.Do(func() { close(done) })
			}
		})
	}
	testutil.Eventually(b, time.Minute, func() error {
		for _, uid := range uids {
			if !srv.Broker.Settled(uid + "/r") {
				return fmt.Errorf("%s not set up", uid)
			}
		}
		return nil
	})
	clients := make([]*testutil.Client, senders)
	for i := range clients {
		clients[i] = srv.Connect(b, uids[i], "s", toks[i])
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := s; j < b.N; j += senders {
				p := fmt.Sprintf(`{"cid":"c%d","type":"text","body":{"text":"a group message of a typical length, number %d"}}`, j, j)
				if err := cl.Publish("im/g/big", 1, p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d deliveries", got.Load(), want)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(want)/el.Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(want), "cpu-ns/delivery")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readAcking reads packets until the connection ends, acknowledges every
// QoS 1 PUBLISH and calls got for each PUBLISH.
func readAcking(c net.Conn, got func()) {
	r := bufio.NewReader(c)
	for {
		h, err := r.ReadByte()
		if err != nil {
			return
		}
		n, err := binary.ReadUvarint(r) // MQTT's variable byte integer is this encoding
		if err != nil {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if h>>4 != packets.Publish {
			continue
		}
		if (h>>1)&3 > 0 && len(body) >= 2 {
			tl := int(binary.BigEndian.Uint16(body))
			if len(body) >= 2+tl+2 {
				if _, err := c.Write([]byte{packets.Puback << 4, 2, body[2+tl], body[3+tl]}); err != nil {
					return
				}
			}
		}
		got()
	}
}
