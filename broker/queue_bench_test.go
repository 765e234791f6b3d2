package broker

import (
	"strconv"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkQueueAccounting is the queue accounting of a group fan-out: an
// event recorded for a session, then its acknowledgement, from parallel
// goroutines each serving sessions of their own (the fan-out and the
// sessions' read goroutines run at once), with the cap checked as the read
// ACL does.
func BenchmarkQueueAccounting(b *testing.B) {
	h := newSessions(nil, 4<<20)
	var next atomic.Int64
	payload := make([]byte, 300)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1)
		cls := make([]*mqtt.Client, 50)
		for i := range cls {
			cls[i] = &mqtt.Client{ID: "u" + strconv.FormatInt(g, 10) + "/d" + strconv.Itoa(i)}
		}
		pid := uint16(0)
		for i := 0; pb.Next(); i++ {
			cl := cls[i%len(cls)]
			pid++
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "im/g/team",
				Payload: payload, PacketID: pid}
			if h.queueFull(cl.ID) {
				b.Fatal("full")
			}
			h.OnQosPublish(cl, pk, 0, 0)
			h.OnQosComplete(cl, pk)
		}
	})
}
