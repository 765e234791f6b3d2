package hooks

import (
	"context"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqim/mqim/chat"
)

type benchMembers struct{}

func (benchMembers) IsMember(context.Context, string, string) (bool, error) { return true, nil }

type benchGate struct{ Gate }

func (benchGate) Deliverable(string) bool      { return true }
func (benchGate) DeliverableReply(string) bool { return true }

type benchUsers struct{ Authenticator }

// BenchmarkReadACL is the read ACL check Mochi makes for each recipient of
// each delivered group event, with the membership answered at once (as the
// membership cache answers).
func BenchmarkReadACL(b *testing.B) {
	h := new(Auth)
	if err := h.Init(&AuthOptions{Users: benchUsers{}, Members: benchMembers{}, Broker: benchGate{}}); err != nil {
		b.Fatal(err)
	}
	cl := &mqtt.Client{ID: "bob/phone", Properties: mqtt.ClientProperties{Username: []byte("bob")}}
	topic := chat.GroupTopic("team")
	b.ReportAllocs()
	for b.Loop() {
		if !h.OnACLCheck(cl, topic, false) {
			b.Fatal("refused")
		}
	}
}
