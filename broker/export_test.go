package broker

import mqtt "github.com/mochi-mqtt/server/v2"

// MochiServer exposes the embedded Mochi server to this package's black-box
// tests, which need to reach its client map.
func MochiServer(b *Broker) *mqtt.Server { return b.srv }
