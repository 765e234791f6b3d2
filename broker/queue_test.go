package broker

import (
	"io"
	"log/slog"
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// An event a session's full outbound queue refuses leaves its accounting:
// Mochi rolls its inflight entry back without OnQosDropped, so its bytes
// stayed counted, and a session whose dropped events added up to the cap
// got no live event again until it ended.
func TestQueueForgetsDroppedEvents(t *testing.T) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 1
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	const topic = "im/u/alice"
	payload := make([]byte, 600)
	one := int64(len(topic) + len(payload))
	h := newSessions(srv, 2*one)
	for _, hk := range []mqtt.Hook{h, new(auth.AllowHook)} {
		if err := srv.AddHook(hk, nil); err != nil {
			t.Fatal(err)
		}
	}
	conn, peer := net.Pipe()
	defer conn.Close()
	defer peer.Close()
	// Nobody writes its outbound queue (one slot) out: the first event
	// waits there, the second is dropped.
	cl := srv.NewClient(conn, "test", "alice/phone", false)
	cl.Properties.ProtocolVersion = 4
	srv.Clients.Add(cl)
	srv.Topics.Subscribe(cl.ID, packets.Subscription{Filter: topic, Qos: 1})
	for range 2 {
		if err := srv.Publish(topic, payload, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := cl.State.Inflight.Len(); n != 1 {
		t.Fatalf("%d events inflight, want 1 (the second dropped)", n)
	}
	if h.queueFull(cl.ID) {
		t.Errorf("queue full with one event of %d bytes held, cap %d", one, 2*one)
	}
	if got := h.queuedBytes(cl.ID); got != one {
		t.Errorf("queued bytes = %d, want %d (the event held)", got, one)
	}
}
