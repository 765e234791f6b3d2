package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/config"
)

// TestJWTSecret signs the tokens of every test server.
const TestJWTSecret = "test-jwt-secret-0123456789abcdef0123456789"

// ServiceKey is the service key of every test server.
const ServiceKey = "test-service-key-0123456789abcdef"

// Server is an in-process mqim on loopback with random ports and a fresh
// database of the chosen backend.
type Server struct {
	*app.App
	Backend  string
	HTTPURL  string // http://127.0.0.1:port
	MQTTAddr string // 127.0.0.1:port
	WSAddr   string // 127.0.0.1:port
}

// TestConfig returns the configuration StartServer uses, before mutators:
// loopback listeners on free ports, a fresh database of backend, quiet logs.
func TestConfig(t testing.TB, backend string) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Store.Driver, cfg.Store.DSN = FreshDSN(t, backend)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.MQTT.WSAddr = "127.0.0.1:0"
	cfg.Auth.ServiceKey = ServiceKey
	cfg.Auth.JWTSecret = TestJWTSecret
	cfg.Log.Level = "error"
	// Tests act fast and as few users; the rate limit tests set their own.
	cfg.Limits = config.Limits{}
	if os.Getenv("MQIM_TEST_LOG") != "" {
		cfg.Log.Level = "debug"
	}
	return cfg
}

// StartServer starts a server, stopped when the test ends.
func StartServer(t testing.TB, backend string, mut ...func(*config.Config)) *Server {
	t.Helper()
	cfg := TestConfig(t, backend)
	for _, m := range mut {
		m(&cfg)
	}
	return StartWith(t, backend, cfg)
}

// StartWith starts a server with exactly cfg.
func StartWith(t testing.TB, backend string, cfg config.Config) *Server {
	t.Helper()
	var w io.Writer = io.Discard
	if os.Getenv("MQIM_TEST_LOG") != "" {
		w = os.Stderr
	}
	return StartLogged(t, backend, cfg, w)
}

// StartLogged starts a server with exactly cfg whose log goes to w.
func StartLogged(t testing.TB, backend string, cfg config.Config, w io.Writer) *Server {
	t.Helper()
	a, err := app.New(context.Background(), cfg, app.NewLogger(cfg.Log, w))
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	if err := a.Start(); err != nil {
		a.Close()
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return &Server{App: a, Backend: backend, HTTPURL: "http://" + a.HTTPAddr(), MQTTAddr: a.Broker.Addr("tcp"), WSAddr: a.Broker.Addr("ws")}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// API sends a request with an optional bearer token and a body (a string or
// []byte is sent as is, anything else as JSON) and returns status and body.
// Any 5xx but 503 (a store outage) fails the test.
func (s *Server) API(t testing.TB, method, path, bearer string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.HTTPURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	st, _, out := s.Do(t, req)
	return st, out
}

// Do sends req (to a URL of s.HTTPURL) and returns status, headers and
// body. The answer is checked against the API's OpenAPI document
// (CheckResponse), and any 5xx but 503 (a store outage) fails the test.
func (s *Server) Do(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.RequestURI(), err)
	}
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		// No request a test makes may find a bug: bad input is a 4xx.
		t.Errorf("%s %s: status %d: %.300s", req.Method, req.URL.RequestURI(), resp.StatusCode, out)
	}
	CheckResponse(t, req, resp.StatusCode, resp.Header, out)
	return resp.StatusCode, resp.Header, out
}

// WaitReady polls /readyz until it answers 200.
func (s *Server) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() error {
		resp, err := http.Get(s.HTTPURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

// MustAPI is API that fails the test unless the status is want, and
// decodes the response into v when v is not nil.
func (s *Server) MustAPI(t testing.TB, want int, method, path, bearer string, body, v any) {
	t.Helper()
	st, out := s.API(t, method, path, bearer, body)
	if st != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
}

// User creates (or updates) a user and returns a fresh access token for it.
func (s *Server) User(t testing.TB, uid string) string {
	t.Helper()
	st, out := s.API(t, "PUT", "/v1/users/"+uid, ServiceKey, map[string]string{"name": strings.ToUpper(uid[:1]) + uid[1:]})
	if st != 200 && st != 201 {
		t.Fatalf("create user %s: %d %s", uid, st, out)
	}
	var tok struct {
		Token string `json:"token"`
	}
	s.MustAPI(t, 200, "POST", "/v1/users/"+uid+"/tokens", ServiceKey, nil, &tok)
	return tok.Token
}

// Msg is one message a test client received.
type Msg struct {
	Topic   string
	Payload []byte
	QoS     byte
}

// Event decodes the payload as a JSON object.
func (m Msg) Event(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		t.Fatalf("payload %q on %s is not JSON: %v", m.Payload, m.Topic, err)
	}
	return v
}

// Client is an MQTT 3.1.1 paho client that records what it receives.
type Client struct {
	mqtt.Client
	ID   string
	Msgs chan Msg
}

// Connect dials the server over TCP as {uid}/{device} with token as the
// password, and fails the test if the connection is refused. Options may
// change anything before the dial.
func (s *Server) Connect(t testing.TB, uid, device, token string, opts ...func(*mqtt.ClientOptions)) *Client {
	t.Helper()
	c, err := s.Dial(uid, device, token, opts...)
	if err != nil {
		t.Fatalf("connect %s/%s: %v", uid, device, err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	if s.App != nil {
		// The server subscribes the device just after CONNACK; a test that
		// publishes right away must not race that.
		Eventually(t, 10*time.Second, func() error {
			if !s.Broker.Settled(c.ID) {
				return fmt.Errorf("%s: session not set up", c.ID)
			}
			return nil
		})
	}
	return c
}

// Dial is Connect that returns the error instead of failing.
func (s *Server) Dial(uid, device, token string, opts ...func(*mqtt.ClientOptions)) (*Client, error) {
	c := &Client{ID: uid + "/" + device, Msgs: make(chan Msg, 20000)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + s.MQTTAddr).SetClientID(c.ID).
		SetUsername(uid).SetPassword(token).SetCleanSession(true).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).
		SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		c.Msgs <- Msg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), QoS: m.Qos()}
	})
	for _, f := range opts {
		f(o)
	}
	c.Client = mqtt.NewClient(o)
	tok := c.Client.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

// OnLost returns an option that reports a lost v3 connection on the
// returned channel.
func OnLost() (func(*mqtt.ClientOptions), chan error) {
	ch := make(chan error, 1)
	return func(o *mqtt.ClientOptions) {
		o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case ch <- err:
			default:
			}
		})
	}, ch
}

// Publish sends and waits for the acknowledgement (QoS 1) or the write (QoS 0).
func (c *Client) Publish(topic string, qos byte, payload any) error {
	tok := c.Client.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(15 * time.Second) {
		return fmt.Errorf("publish to %s timed out", topic)
	}
	return tok.Error()
}

// MustPublish is Publish that fails the test on an error.
func (c *Client) MustPublish(t testing.TB, topic string, qos byte, payload any) {
	t.Helper()
	if err := c.Publish(topic, qos, payload); err != nil {
		t.Fatalf("%s: publish to %s: %v", c.ID, topic, err)
	}
}

// Next returns the next message received, failing after within.
func (c *Client) Next(t testing.TB, within time.Duration) Msg {
	t.Helper()
	select {
	case m := <-c.Msgs:
		return m
	case <-time.After(within):
		t.Fatalf("%s: nothing received within %v", c.ID, within)
		return Msg{}
	}
}

// Await returns the first received event whose JSON has every key/value of
// want (values compared after JSON decoding, so numbers are float64),
// skipping others, failing after within.
func (c *Client) Await(t testing.TB, within time.Duration, want map[string]any) map[string]any {
	t.Helper()
	return await(t, c.ID, c.Msgs, within, want)
}

// await returns the first message on msgs whose event matches want,
// skipping others; it fails, naming who, after within.
func await(t testing.TB, who string, msgs <-chan Msg, within time.Duration, want map[string]any) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-msgs:
			if ev := m.Event(t); Matches(ev, want) {
				return ev
			}
		case <-deadline:
			t.Fatalf("%s: no event matching %v within %v", who, want, within)
			return nil
		}
	}
}

// Quiet fails if an event matching want arrives within d. Use it only after
// something that proves delivery has happened (a later event awaited), so
// the wait is a bound rather than a guess.
func (c *Client) Quiet(t testing.TB, d time.Duration, want map[string]any) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-c.Msgs:
			if ev := m.Event(t); Matches(ev, want) {
				t.Fatalf("%s: unexpected event %v", c.ID, ev)
			}
		case <-deadline:
			return
		}
	}
}

// Matches tells whether ev has every key/value of want.
func Matches(ev, want map[string]any) bool {
	for k, v := range want {
		got, ok := ev[k]
		if !ok {
			return false
		}
		if n, isInt := v.(int); isInt {
			v = float64(n)
		}
		if fmt.Sprint(got) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// V5 is an MQTT 5 client (eclipse/paho.golang) that records what it receives.
type V5 struct {
	*pahov5.Client
	Connack *pahov5.Connack // the server's CONNACK
	Msgs    chan Msg
	mu      sync.Mutex
	down    error
}

// DialV5 connects an MQTT 5 client. The CONNACK reason code is in the error
// when the server refuses.
func (s *Server) DialV5(t testing.TB, uid, device, token string, mut ...func(*pahov5.Connect)) (*V5, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.MQTTAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &V5{Msgs: make(chan Msg, 20000)}
	c.Client = pahov5.NewClient(pahov5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			c.Msgs <- Msg{Topic: pr.Packet.Topic, Payload: append([]byte(nil), pr.Packet.Payload...), QoS: pr.Packet.QoS}
			return true, nil
		}},
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			c.mu.Lock()
			c.down = fmt.Errorf("server disconnect 0x%x", d.ReasonCode)
			c.mu.Unlock()
		},
		OnClientError: func(err error) {
			c.mu.Lock()
			c.down = err
			c.mu.Unlock()
		},
	})
	cp := &pahov5.Connect{ClientID: uid + "/" + device, Username: uid, UsernameFlag: true, Password: []byte(token),
		PasswordFlag: true, KeepAlive: 30, CleanStart: true}
	for _, f := range mut {
		f(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		if ca != nil {
			return nil, fmt.Errorf("connack 0x%x: %w", ca.ReasonCode, err)
		}
		return nil, err
	}
	c.Connack = ca
	t.Cleanup(func() { _ = c.Disconnect(&pahov5.Disconnect{}) })
	return c, nil
}

// Publish sends at qos and returns the PUBACK reason code (0 for QoS 0).
func (c *V5) Publish(topic string, qos byte, payload []byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pr, err := c.Client.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: qos, Payload: payload})
	if pr != nil {
		return pr.ReasonCode, nil
	}
	return 0, err
}

// Await is Client.Await for MQTT 5.
func (c *V5) Await(t testing.TB, within time.Duration, want map[string]any) map[string]any {
	t.Helper()
	return await(t, "v5", c.Msgs, within, want)
}
