package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/golang-jwt/jwt/v5"
	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/internal/token"
)

const wait = 5 * time.Second

// v5Client is an MQTT 5 client that reports a server DISCONNECT.
type v5Client struct {
	*pahov5.Client
	Connack    *pahov5.Connack
	Msgs       chan testutil.Msg
	Disconnect chan byte // reason code of a server DISCONNECT
}

// dialV5 connects an MQTT 5 client with the given client id, username and
// password. On a refusal it returns the CONNACK (when one came) and an error.
func dialV5(t *testing.T, srv *testutil.Server, clientID, user, pass string) (*v5Client, *pahov5.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.MQTTAddr, wait)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5Client{Msgs: make(chan testutil.Msg, 100), Disconnect: make(chan byte, 1)}
	c.Client = pahov5.NewClient(pahov5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			c.Msgs <- testutil.Msg{Topic: pr.Packet.Topic, Payload: append([]byte(nil), pr.Packet.Payload...), QoS: pr.Packet.QoS}
			return true, nil
		}},
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			select {
			case c.Disconnect <- d.ReasonCode:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, err := c.Connect(ctx, &pahov5.Connect{ClientID: clientID, Username: user, UsernameFlag: true,
		Password: []byte(pass), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	c.Connack = ca
	t.Cleanup(func() { _ = c.Client.Disconnect(&pahov5.Disconnect{}) })
	return c, ca, nil
}

// awaitSession waits until the server has set up a device's session:
// subscriptions are made after CONNACK, so an event published in between is
// left to catch-up, and a test that expects a live delivery to the device
// must wait for them.
func awaitSession(t *testing.T, srv *testutil.Server, clientID string) {
	t.Helper()
	testutil.Eventually(t, wait, func() error {
		if !srv.Broker.Settled(clientID) {
			return fmt.Errorf("%s: session not set up yet", clientID)
		}
		return nil
	})
}

// withClientID overrides the client id paho v3 sends.
func withClientID(id string) func(*mqtt.ClientOptions) {
	return func(o *mqtt.ClientOptions) { o.SetClientID(id) }
}

func signer(t *testing.T, key string) *token.Signer {
	t.Helper()
	s, err := token.NewSigner([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mint(t *testing.T, s *token.Signer, sub string, iat time.Time, ttl time.Duration) string {
	t.Helper()
	tok, _, err := s.Mint(sub, iat, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawJWT signs arbitrary claims with an arbitrary method.
func rawJWT(t *testing.T, m jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertV3Refused checks that a v3 connect was refused with a CONNACK
// refusal (not a network error or a timeout).
func assertV3Refused(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("v3 connect accepted, want refused")
	}
	if !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) && !errors.Is(err, pahopackets.ErrorRefusedBadUsernameOrPassword) &&
		!errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
		t.Fatalf("v3 connect: %v, want a CONNACK refusal", err)
	}
}

func assertV5Refused(t *testing.T, ca *pahov5.Connack, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("v5 connect accepted, want refused")
	}
	if ca == nil {
		t.Fatalf("v5 connect: %v, want a refusing CONNACK", err)
	}
	if ca.ReasonCode < 0x80 {
		t.Fatalf("v5 CONNACK reason 0x%02x, want a refusal (>= 0x80)", ca.ReasonCode)
	}
}

func TestConnectAuthentication(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		alice := srv.User(t, "alice")
		bob := srv.User(t, "bob")
		good := signer(t, srv.App.Config.Auth.JWTSecret)
		other := signer(t, "another-key-0123456789abcdef0123456789abcdef")
		now := time.Now()
		key := []byte(srv.App.Config.Auth.JWTSecret)

		t.Run("valid token connects", func(t *testing.T) {
			// Device ids the refusal cases below do not use, so that this
			// session's teardown cannot blur their checks.
			c, err := srv.Dial("alice", "ok3", alice)
			if err != nil {
				t.Fatalf("v3: %v", err)
			}
			defer c.Disconnect(50)
			v5, _, err := dialV5(t, srv, "alice/ok5", "alice", alice)
			if err != nil {
				t.Fatalf("v5: %v", err)
			}
			if v5.Connack.ReasonCode != 0 {
				t.Fatalf("v5 CONNACK reason 0x%02x", v5.Connack.ReasonCode)
			}
			testutil.Eventually(t, wait, func() error {
				for _, id := range []string{"alice/ok3", "alice/ok5"} {
					if !srv.Broker.Connected(id) {
						return fmt.Errorf("%s not connected", id)
					}
				}
				return nil
			})
			// A token minted by the server's own signer works as well.
			v5b, _, err := dialV5(t, srv, "alice/ok-web", "alice", mint(t, good, "alice", now, time.Hour))
			if err != nil {
				t.Fatalf("v5 with locally minted token: %v", err)
			}
			_ = v5b
		})

		refusals := []struct {
			name, clientID, user, pass string
		}{
			{"garbage token", "alice/phone", "alice", "garbage"},
			{"empty password", "alice/phone", "alice", ""},
			{"expired token", "alice/phone", "alice", mint(t, good, "alice", now.Add(-2*time.Hour), time.Hour)},
			{"token issued in the future", "alice/phone", "alice", mint(t, good, "alice", now.Add(time.Hour), 2*time.Hour)},
			{"token signed with another key", "alice/phone", "alice", mint(t, other, "alice", now, time.Hour)},
			{"token of another user", "alice/phone", "alice", bob},
			{"token with another sub", "alice/phone", "alice", mint(t, good, "bob", now, time.Hour)},
			{"token of unknown user", "carol/phone", "carol", mint(t, good, "carol", now, time.Hour)},
			{"malformed token", "alice/phone", "alice", "eyJhbGciOiJIUzI1NiJ9.not-base64!.sig"},
			{"truncated token", "alice/phone", "alice", alice[:len(alice)-5]},
			{"alg none", "alice/phone", "alice", rawJWT(t, jwt.SigningMethodNone,
				jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, jwt.UnsafeAllowNoneSignatureType)},
			{"alg HS384", "alice/phone", "alice", rawJWT(t, jwt.SigningMethodHS384,
				jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, key)},
			{"token without exp", "alice/phone", "alice", rawJWT(t, jwt.SigningMethodHS256,
				jwt.MapClaims{"sub": "alice", "iat": now.Unix()}, key)},
			{"token without iat", "alice/phone", "alice", rawJWT(t, jwt.SigningMethodHS256,
				jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}, key)},
			{"client id of another user", "bob/phone", "alice", alice},
			{"client id without device", "alice", "alice", alice},
			{"client id with empty device", "alice/", "alice", alice},
			{"client id with invalid device", "alice/ph one", "alice", alice},
			{"client id prefix is not the user", "alicex/phone", "alice", alice},
			{"client id inline", "inline", "alice", alice},
			{"empty client id", "", "alice", alice},
			// Tokens whose sub matches the (invalid) username, so that only
			// the id rules can refuse these.
			{"invalid username characters", "al ice/phone", "al ice", mint(t, good, "al ice", now, time.Hour)},
			{"username with slash", "alice/x/phone", "alice/x", mint(t, good, "alice/x", now, time.Hour)},
			{"username too long", strings.Repeat("a", 65) + "/phone", strings.Repeat("a", 65),
				mint(t, good, strings.Repeat("a", 65), now, time.Hour)},
			{"empty username", "/phone", "", mint(t, good, "", now, time.Hour)},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				t.Run("v3", func(t *testing.T) {
					c, err := srv.Dial(tc.user, "x", tc.pass, withClientID(tc.clientID))
					if err == nil {
						c.Disconnect(50)
					}
					assertV3Refused(t, err)
				})
				t.Run("v5", func(t *testing.T) {
					_, ca, err := dialV5(t, srv, tc.clientID, tc.user, tc.pass)
					assertV5Refused(t, ca, err)
				})
				if tc.clientID != "" && tc.clientID != "inline" && srv.Broker.Connected(tc.clientID) {
					t.Fatalf("refused client %q is registered as connected", tc.clientID)
				}
			})
		}

		t.Run("inline client intact", func(t *testing.T) {
			if srv.Broker.Connected(mochi.InlineClientId) {
				t.Fatalf("the inline client was replaced by a network client")
			}
			// Server-side delivery still reaches a subscriber.
			c := srv.Connect(t, "bob", "phone", bob)
			c.MustPublish(t, "im/u/bob", 1, "after inline attempt")
			c.Await(t, wait, map[string]any{"kind": "msg", "from": "bob", "to": "bob"})
		})
	})
}

func TestDisabledUser(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		alice := srv.User(t, "alice")
		bob := srv.User(t, "bob")
		sg := signer(t, srv.App.Config.Auth.JWTSecret)
		// A token issued well before the user is disabled: disabling revokes it.
		oldTok := mint(t, sg, "alice", time.Now().Add(-30*time.Second), time.Hour)

		lostOpt, lost := testutil.OnLost()
		a3 := srv.Connect(t, "alice", "phone", alice, lostOpt)
		a5, _, err := dialV5(t, srv, "alice/tablet", "alice", alice)
		if err != nil {
			t.Fatal(err)
		}
		bobLostOpt, bobLost := testutil.OnLost()
		b3 := srv.Connect(t, "bob", "phone", bob, bobLostOpt)
		awaitSession(t, srv, "bob/phone")
		testutil.Eventually(t, wait, func() error {
			if !srv.Broker.Connected("alice/phone") || !srv.Broker.Connected("alice/tablet") {
				return errors.New("alice not connected yet")
			}
			return nil
		})

		srv.MustAPI(t, 200, "PUT", "/v1/users/alice", testutil.ServiceKey, map[string]any{"disabled": true}, nil)

		select {
		case <-lost:
		case <-time.After(wait):
			t.Fatal("v3: alice's live session was not disconnected after disabling her")
		}
		select {
		case <-a5.Done():
		case <-time.After(wait):
			t.Fatal("v5: alice's live session was not disconnected after disabling her")
		}
		select {
		case rc := <-a5.Disconnect:
			if rc < 0x80 {
				t.Fatalf("v5 DISCONNECT reason 0x%02x, want >= 0x80", rc)
			}
		default: // the DISCONNECT packet is a courtesy; the close is what counts
		}
		testutil.Eventually(t, wait, func() error {
			if a3.IsConnectionOpen() || srv.Broker.Connected("alice/phone") || srv.Broker.Connected("alice/tablet") {
				return errors.New("alice still connected")
			}
			return nil
		})

		// Bob is untouched and still works.
		b3.MustPublish(t, "im/u/bob", 1, "still here")
		b3.Await(t, wait, map[string]any{"kind": "msg", "from": "bob"})
		select {
		case err := <-bobLost:
			t.Fatalf("bob lost his connection: %v", err)
		default:
		}

		// A disabled user cannot connect, with any token.
		fresh := mint(t, sg, "alice", time.Now(), time.Hour)
		for name, tok := range map[string]string{"session token": alice, "fresh token": fresh, "old token": oldTok} {
			_, err := srv.Dial("alice", "phone", tok)
			if err == nil {
				t.Fatalf("v3 %s: disabled user connected", name)
			}
			assertV3Refused(t, err)
			_, ca, err := dialV5(t, srv, "alice/tablet", "alice", tok)
			assertV5Refused(t, ca, err)
		}

		// Enabled again: a token issued before the disable stays revoked, a
		// new one works.
		srv.MustAPI(t, 200, "PUT", "/v1/users/alice", testutil.ServiceKey, map[string]any{"disabled": false}, nil)
		_, err = srv.Dial("alice", "phone", oldTok)
		assertV3Refused(t, err)
		_, ca, err := dialV5(t, srv, "alice/tablet", "alice", oldTok)
		assertV5Refused(t, ca, err)
		var tok struct {
			Token string `json:"token"`
		}
		srv.MustAPI(t, 200, "POST", "/v1/users/alice/tokens", testutil.ServiceKey, nil, &tok)
		srv.Connect(t, "alice", "phone", tok.Token)
		if _, _, err := dialV5(t, srv, "alice/tablet", "alice", tok.Token); err != nil {
			t.Fatalf("v5 after re-enable: %v", err)
		}
	})
}

// subV3 subscribes one filter at qos and returns the SUBACK return code.
func subV3(t *testing.T, c mqtt.Client, filter string, qos byte) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("v3 subscribe %s: timed out", filter)
	}
	// One filter per SUBSCRIBE, so one result (paho keys a $share filter by
	// its topic part).
	res := tok.(*mqtt.SubscribeToken).Result()
	if len(res) != 1 {
		t.Fatalf("v3 subscribe %s: results %v, err %v", filter, res, tok.Error())
	}
	for _, rc := range res {
		return rc
	}
	return 0
}

// subV5 subscribes one filter at qos and returns the SUBACK reason code.
func subV5(t *testing.T, c *v5Client, filter string, qos byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if sa == nil {
		t.Fatalf("v5 subscribe %s: %v", filter, err)
	}
	if len(sa.Reasons) != 1 {
		t.Fatalf("v5 subscribe %s: %d reason codes", filter, len(sa.Reasons))
	}
	return sa.Reasons[0]
}

// subscriber lets one test body run against both protocol versions.
type subscriber struct {
	name string
	sub  func(t *testing.T, filter string, qos byte) byte
}

func subscribers(t *testing.T, srv *testutil.Server, uid, tok string) []subscriber {
	t.Helper()
	c3 := srv.Connect(t, uid, "v3", tok)
	c5, _, err := dialV5(t, srv, uid+"/v5", uid, tok)
	if err != nil {
		t.Fatal(err)
	}
	return []subscriber{
		{"v3", func(t *testing.T, f string, q byte) byte { return subV3(t, c3.Client, f, q) }},
		{"v5", func(t *testing.T, f string, q byte) byte { return subV5(t, c5, f, q) }},
	}
}

func wantRefused(t *testing.T, s subscriber, filter string) {
	t.Helper()
	rc := s.sub(t, filter, 1)
	switch {
	case s.name == "v3" && rc != 0x80:
		t.Errorf("v3 subscribe %q: return code 0x%02x, want 0x80", filter, rc)
	case s.name == "v5" && rc < 0x80:
		t.Errorf("v5 subscribe %q: reason code 0x%02x, want a refusal (>= 0x80)", filter, rc)
	}
}

func wantGranted(t *testing.T, s subscriber, filter string, qos, want byte) {
	t.Helper()
	if rc := s.sub(t, filter, qos); rc != want {
		t.Errorf("%s subscribe %q at QoS %d: code 0x%02x, want granted QoS %d", s.name, filter, qos, rc, want)
	}
}

// awaitAll waits until c has received an event matching each of wants, in
// any order.
func awaitAll(t *testing.T, c *testutil.Client, wants ...map[string]any) {
	t.Helper()
	left := append([]map[string]any(nil), wants...)
	deadline := time.After(wait)
	for len(left) > 0 {
		select {
		case m := <-c.Msgs:
			ev := m.Event(t)
			for i, w := range left {
				if testutil.Matches(ev, w) {
					left = append(left[:i], left[i+1:]...)
					break
				}
			}
		case <-deadline:
			t.Fatalf("%s: still waiting for %v", c.ID, left)
		}
	}
}

func TestSubscribeACL(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		alice := srv.User(t, "alice")
		bob := srv.User(t, "bob")
		carol := srv.User(t, "carol")
		// Group events are delivered asynchronously. Wait until they have
		// been, through a member connected beforehand, so that none reaches
		// the clients below while they subscribe: Mochi v2.7.9 refuses a
		// SUBSCRIBE whose packet id equals that of an unacknowledged outbound
		// publish (0x91, even to MQTT 3.1.1 clients), though the two
		// directions' packet ids are independent.
		witness := srv.Connect(t, "bob", "witness", bob)
		awaitSession(t, srv, "bob/witness")
		srv.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey,
			map[string]any{"id": "g1", "name": "G", "owner": "alice", "members": []string{"bob"}}, nil)
		awaitAll(t, witness, map[string]any{"kind": "group", "event": "created"}, map[string]any{"kind": "msg", "to": "g1"})

		refused := []string{
			"im/#", "im/u/+", "im/+/alice", "im/u/#", "im/g/+", "im", "im/u/alice/#", "im/u/alice/x",
			"#", "+", "+/u/alice", "+/#", "$share/x/im/u/alice", "$share/x/im/#", "$share/x/#",
			"im/u/bob", "im/g/nope", "im/x/alice", "news/1", "news/#", "$share/x/news/1", "$SYS/#",
		}
		t.Run("alice", func(t *testing.T) {
			for _, s := range subscribers(t, srv, "alice", alice) {
				t.Run(s.name, func(t *testing.T) {
					for _, f := range refused {
						wantRefused(t, s, f)
					}
					// Own inbox and own group: granted, raised to QoS 1.
					wantGranted(t, s, "im/u/alice", 0, 1)
					wantGranted(t, s, "im/g/g1", 0, 1)
				})
			}
		})
		t.Run("member", func(t *testing.T) {
			for _, s := range subscribers(t, srv, "bob", bob) {
				t.Run(s.name, func(t *testing.T) {
					wantGranted(t, s, "im/g/g1", 1, 1)
					wantGranted(t, s, "im/u/bob", 1, 1)
					wantRefused(t, s, "im/u/alice")
				})
			}
		})
		t.Run("non-member", func(t *testing.T) {
			for _, s := range subscribers(t, srv, "carol", carol) {
				t.Run(s.name, func(t *testing.T) {
					wantRefused(t, s, "im/g/g1")
					wantRefused(t, s, "im/u/bob")
					wantGranted(t, s, "im/u/carol", 1, 1)
				})
			}
		})

		// A refused subscription receives nothing: carol tries to listen in on
		// bob and on g1, then alice writes to both.
		t.Run("refused subscriptions deliver nothing", func(t *testing.T) {
			spy := srv.Connect(t, "carol", "spy", carol)
			for _, f := range []string{"im/u/bob", "im/g/g1", "#", "im/#", "+/u/bob"} {
				if rc := subV3(t, spy.Client, f, 1); rc != 0x80 {
					t.Fatalf("subscribe %q: 0x%02x", f, rc)
				}
			}
			b := srv.Connect(t, "bob", "reader", bob)
			awaitSession(t, srv, "bob/reader")
			a := srv.Connect(t, "alice", "writer", alice)
			a.MustPublish(t, "im/u/bob", 1, "secret 1:1")
			a.MustPublish(t, "im/g/g1", 1, `{"cid":"c1","type":"text","body":{"text":"secret group"}}`)
			b.Await(t, wait, map[string]any{"kind": "msg", "to": "bob"})
			b.Await(t, wait, map[string]any{"kind": "msg", "to": "g1"})
			select {
			case m := <-spy.Msgs:
				t.Fatalf("carol received %s on %s", m.Payload, m.Topic)
			case <-time.After(200 * time.Millisecond): // bounded: delivery to bob has happened
			}
		})

		t.Run("publish outside im denied", func(t *testing.T) {
			c5, _, err := dialV5(t, srv, "alice/pub", "alice", alice)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := publishV5(c5, "news/1", 1, []byte("hello"))
			if err != nil {
				t.Fatal(err)
			}
			if rc < 0x80 {
				t.Fatalf("v5 publish to news/1: PUBACK 0x%02x, want a refusal", rc)
			}
		})
	})
}

func publishV5(c *v5Client, topic string, qos byte, payload []byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	pr, err := c.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: qos, Payload: payload})
	if pr != nil {
		return pr.ReasonCode, nil
	}
	return 0, err
}

func TestOpenTopics(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.MQTT.OpenTopics = true })
		alice := srv.User(t, "alice")
		bob := srv.User(t, "bob")

		for _, s := range subscribers(t, srv, "alice", alice) {
			t.Run(s.name, func(t *testing.T) {
				wantGranted(t, s, "news/1", 1, 1)
				wantGranted(t, s, "news/#", 0, 0) // QoS is raised only on im/
				wantGranted(t, s, "$share/x/news/1", 1, 1)
				for _, f := range []string{"im/#", "im/u/+", "#", "+", "+/u/alice", "+/#", "$share/x/im/u/alice",
					"$share/x/#", "im/u/bob", "$SYS/#"} {
					wantRefused(t, s, f)
				}
				wantGranted(t, s, "im/u/alice", 0, 1)
			})
		}

		// Plain-broker traffic flows as-is between users, on both versions.
		sub3 := srv.Connect(t, "alice", "news3", alice)
		if rc := subV3(t, sub3.Client, "news/1", 1); rc != 1 {
			t.Fatalf("v3 subscribe news/1: 0x%02x", rc)
		}
		sub5, _, err := dialV5(t, srv, "alice/news5", "alice", alice)
		if err != nil {
			t.Fatal(err)
		}
		if rc := subV5(t, sub5, "news/1", 1); rc != 1 {
			t.Fatalf("v5 subscribe news/1: 0x%02x", rc)
		}
		pub := srv.Connect(t, "bob", "pub", bob)
		pub.MustPublish(t, "news/1", 1, "headline")
		if m := sub3.Next(t, wait); m.Topic != "news/1" || string(m.Payload) != "headline" {
			t.Fatalf("v3 got %q on %s", m.Payload, m.Topic)
		}
		select {
		case m := <-sub5.Msgs:
			if m.Topic != "news/1" || string(m.Payload) != "headline" {
				t.Fatalf("v5 got %q on %s", m.Payload, m.Topic)
			}
		case <-time.After(wait):
			t.Fatal("v5: news/1 not delivered")
		}
		pub5, _, err := dialV5(t, srv, "bob/pub5", "bob", bob)
		if err != nil {
			t.Fatal(err)
		}
		if rc, err := publishV5(pub5, "news/1", 1, []byte("v5 headline")); err != nil || rc != 0 {
			t.Fatalf("v5 publish news/1: 0x%02x %v", rc, err)
		}
		if m := sub3.Next(t, wait); string(m.Payload) != "v5 headline" {
			t.Fatalf("v3 got %q", m.Payload)
		}
	})
}
