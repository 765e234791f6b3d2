package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// newReplier is the inline client replies with correlation data are
// published from: one of its own, because the one Server.Publish uses
// cannot carry properties. Its publishes skip the ACL and reach OnPublish
// as inline. One serves every reply (an inbound publish of an inline
// client only reads its state, as Server.Publish's shared one shows): a
// client per reply would allocate a whole outbound queue
// (mqtt.max_writes_pending slots) and inflight map for each.
func newReplier(srv *mqtt.Server) *mqtt.Client {
	cl := srv.NewClient(nil, "local", mqtt.InlineClientId, true)
	cl.Properties.ProtocolVersion = 5 // or the properties are dropped on the way in
	return cl
}

// Reply publishes payload at QoS 1 to one device's reply topic, carrying
// the request's MQTT 5 Correlation Data (nil: none) back to it: the one
// property a server event may bear besides those MQTT adds. Like Deliver it
// never waits on the receiver.
func (b *Broker) Reply(topic string, payload, correlation []byte) error {
	if len(correlation) == 0 {
		return b.Deliver(topic, payload, 1)
	}
	return b.srv.InjectPacket(b.replier, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     payload,
		Properties:  packets.Properties{CorrelationData: correlation},
		PacketID:    1, // as in mqtt.Server.Publish: never processed inbound, but checked for validity
	})
}
