package broker_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/mqim/mqim/broker"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

const wait = 5 * time.Second

// encodeLen encodes an MQTT variable byte integer.
func encodeLen(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// connectPacket builds a CONNECT (protocol level 4 = 3.1.1, 5 = MQTT 5)
// with clean start, username, password and a 30 s keepalive.
func connectPacket(level byte, clientID, user, pass string) []byte {
	body := append(mqttString("MQTT"), level, 0xC2, 0, 30)
	if level == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(user)...)
	body = append(body, mqttString(pass)...)
	return append(append([]byte{0x10}, encodeLen(len(body))...), body...)
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// dial opens a TCP connection to addr, closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawConnect opens a TCP connection and completes CONNECT/CONNACK.
func rawConnect(t *testing.T, addr string, level byte, uid, device, tok string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn := dial(t, addr)
	if _, err := conn.Write(connectPacket(level, uid+"/"+device, uid, tok)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	r := bufio.NewReader(conn)
	typ, body, err := readPacket(r)
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if typ != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %x, want success", typ, body)
	}
	return conn, r
}

// awaitClosed reads (and discards) until the server closes conn, failing if
// it is still open after wait. It returns how long that took.
func awaitClosed(t *testing.T, conn net.Conn, r io.Reader) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(wait))
	buf := make([]byte, 512)
	for {
		_, err := r.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", wait)
		}
		return time.Since(start)
	}
}

// v5Dial connects an MQTT 5 client over TCP, failing the test if refused.
func v5Dial(t *testing.T, srv *testutil.Server, uid, device, tok string) *testutil.V5 {
	t.Helper()
	c, err := srv.DialV5(t, uid, device, tok)
	if err != nil {
		t.Fatalf("v5 connect: %v", err)
	}
	return c
}

func overWebSocket(addr string) func(*mqtt.ClientOptions) {
	return func(o *mqtt.ClientOptions) {
		o.Servers = []*url.URL{{Scheme: "ws", Host: addr, Path: "/"}}
	}
}

func overTLS(addr string) func(*mqtt.ClientOptions) {
	return func(o *mqtt.ClientOptions) {
		o.Servers = []*url.URL{{Scheme: "ssl", Host: addr}}
		o.SetTLSConfig(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
	}
}

// selfSigned writes a throwaway certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mqim test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// awaitListening waits until addr accepts TCP connections. Mochi's WebSocket
// listener binds in a goroutine started by Serve, so it may not accept yet
// when the server has just started.
func awaitListening(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, wait, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

func TestConnectDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		cert, key := selfSigned(t)
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.MQTT.ConnectTimeout = deadline
			c.MQTT.TLSAddr, c.MQTT.TLSCert, c.MQTT.TLSKey = "127.0.0.1:0", cert, key
		})
		alice := srv.User(t, "alice")
		tlsAddr := srv.Broker.Addr("tls")
		awaitListening(t, srv.WSAddr)

		checkElapsed := func(t *testing.T, d time.Duration) {
			t.Helper()
			if d < deadline-50*time.Millisecond || d > 3*time.Second {
				t.Fatalf("closed after %v, want about %v", d, deadline)
			}
		}

		tcp := func(addr string) func() (net.Conn, error) {
			return func() (net.Conn, error) { return net.DialTimeout("tcp", addr, wait) }
		}
		for _, tc := range []struct {
			name string
			dial func() (net.Conn, error)
			send []byte // sent once connected, then nothing
		}{
			{name: "tcp silent", dial: tcp(srv.MQTTAddr)},
			// The start of a CONNECT, then nothing: a slow client does not
			// get to keep the connection either.
			{name: "tcp partial connect", dial: tcp(srv.MQTTAddr), send: connectPacket(4, "alice/phone", "alice", alice)[:8]},
			{name: "tls silent before handshake", dial: tcp(tlsAddr)},
			{name: "tls silent after handshake", dial: func() (net.Conn, error) {
				return tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", tlsAddr,
					&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
			}},
			{name: "websocket port silent before the upgrade", dial: tcp(srv.WSAddr)},
			{name: "websocket port partial upgrade request", dial: tcp(srv.WSAddr), send: []byte("GET / HTTP/1.1\r\nHost: x\r\n")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conn, err := tc.dial()
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if len(tc.send) > 0 {
					if _, err := conn.Write(tc.send); err != nil {
						t.Fatal(err)
					}
				}
				checkElapsed(t, awaitClosed(t, conn, conn))
			})
		}

		t.Run("websocket silent", func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: wait}
			ws, resp, err := d.Dial("ws://"+srv.WSAddr+"/", nil)
			if err != nil {
				t.Fatalf("websocket upgrade: %v", err)
			}
			defer ws.Close()
			resp.Body.Close()
			if ws.Subprotocol() != "mqtt" {
				t.Fatalf("subprotocol %q, want mqtt", ws.Subprotocol())
			}
			start := time.Now()
			_ = ws.SetReadDeadline(start.Add(wait))
			_, _, err = ws.ReadMessage()
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("websocket still open after %v (err %v)", wait, err)
			}
			checkElapsed(t, time.Since(start))
		})

		t.Run("clients that connected in time keep working", func(t *testing.T) {
			tcpLostOpt, tcpLost := testutil.OnLost()
			tcp := srv.Connect(t, "alice", "tcp", alice, tcpLostOpt)
			wsLostOpt, wsLost := testutil.OnLost()
			ws := srv.Connect(t, "alice", "ws", alice, overWebSocket(srv.WSAddr), wsLostOpt)
			tlsLostOpt, tlsLost := testutil.OnLost()
			tlsc := srv.Connect(t, "alice", "tls", alice, overTLS(tlsAddr), tlsLostOpt)
			v5 := v5Dial(t, srv, "alice", "v5", alice)

			// Wait well past the CONNECT deadline: a deadline that leaked
			// into the session would have closed these connections by now.
			<-time.After(3 * deadline)

			// Sessions are set up after CONNACK; all four devices must be
			// subscribed to the inbox before the echoes below can be awaited.
			testutil.Eventually(t, wait, func() error {
				for _, id := range []string{"alice/tcp", "alice/ws", "alice/tls", "alice/v5"} {
					if !srv.Broker.Settled(id) {
						return fmt.Errorf("%s not subscribed yet", id)
					}
				}
				return nil
			})
			select {
			case err := <-tcpLost:
				t.Fatalf("tcp client lost its connection: %v", err)
			case err := <-wsLost:
				t.Fatalf("websocket client lost its connection: %v", err)
			case err := <-tlsLost:
				t.Fatalf("tls client lost its connection: %v", err)
			case <-v5.Done():
				t.Fatal("v5 client lost its connection")
			default:
			}
			for i, c := range []*testutil.Client{tcp, ws, tlsc} {
				cid := []string{"tcp", "ws", "tls"}[i]
				if err := c.Publish("im/u/alice", 1, `{"cid":"`+cid+`","type":"text","body":{"text":"still here"}}`); err != nil {
					t.Fatalf("%s publish: %v", cid, err)
				}
				// Every device of alice gets the echo.
				tcp.Await(t, wait, map[string]any{"kind": "msg", "cid": cid})
				ws.Await(t, wait, map[string]any{"kind": "msg", "cid": cid})
				tlsc.Await(t, wait, map[string]any{"kind": "msg", "cid": cid})
				v5.Await(t, wait, map[string]any{"kind": "msg", "cid": cid})
			}
			if rc, err := v5.Publish("im/u/alice", 1, []byte(`{"cid":"v5","type":"text","body":{"text":"still here"}}`)); err != nil || rc != 0 {
				t.Fatalf("v5 publish: 0x%02x %v", rc, err)
			}
			tcp.Await(t, wait, map[string]any{"kind": "msg", "cid": "v5"})
			v5.Await(t, wait, map[string]any{"kind": "msg", "cid": "v5"})
		})
	})
}

func TestMaxPacketSize(t *testing.T) {
	const limit = 4096
	const huge = 200 << 20 // declared remaining length, never sent
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.MQTT.MaxPacketSize = limit
			c.Chat.MaxPayload = limit
			c.MQTT.ConnectTimeout = 10 * time.Second // a prompt close is the size check, not this
		})
		alice := srv.User(t, "alice")

		// allocated reports how many bytes the process allocated while f ran.
		// A server that trusted the declared length would allocate ~200 MB.
		allocated := func(f func()) uint64 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f()
			runtime.ReadMemStats(&after)
			return after.TotalAlloc - before.TotalAlloc
		}
		checkPrompt := func(t *testing.T, d time.Duration, alloc uint64) {
			t.Helper()
			if d > 2*time.Second {
				t.Fatalf("closed after %v, want promptly", d)
			}
			if alloc > 64<<20 {
				t.Fatalf("%d MB allocated while refusing the oversized packet", alloc>>20)
			}
		}
		oversized := func(first byte) []byte {
			return append(append([]byte{first}, encodeLen(huge)...), mqttString("im/u/alice")...)
		}

		t.Run("oversized CONNECT before authentication", func(t *testing.T) {
			conn := dial(t, srv.MQTTAddr)
			var d time.Duration
			alloc := allocated(func() {
				if _, err := conn.Write(oversized(0x10)); err != nil {
					t.Fatal(err)
				}
				d = awaitClosed(t, conn, conn)
			})
			checkPrompt(t, d, alloc)
		})

		for _, level := range []byte{4, 5} {
			name := map[byte]string{4: "v3", 5: "v5"}[level]
			t.Run("oversized PUBLISH "+name, func(t *testing.T) {
				conn, r := rawConnect(t, srv.MQTTAddr, level, "alice", "raw"+name, alice)
				var d time.Duration
				alloc := allocated(func() {
					if _, err := conn.Write(append(oversized(0x32), 0, 1, 'x', 'y', 'z')); err != nil {
						t.Fatal(err)
					}
					d = awaitClosed(t, conn, r)
				})
				checkPrompt(t, d, alloc)
				testutil.Eventually(t, wait, func() error {
					if srv.Broker.Connected("alice/raw" + name) {
						return errors.New("still registered as connected")
					}
					return nil
				})
			})
		}

		t.Run("paho v3 publish above the limit is disconnected", func(t *testing.T) {
			lostOpt, lost := testutil.OnLost()
			c := srv.Connect(t, "alice", "big3", alice, lostOpt)
			// Under the limit still works.
			c.MustPublish(t, "im/u/alice", 1, strings.Repeat("a", 2000))
			c.Await(t, wait, map[string]any{"kind": "msg", "from": "alice"})
			c.Client.Publish("im/u/alice", 1, false, strings.Repeat("b", 10<<10))
			select {
			case <-lost:
			case <-time.After(wait):
				t.Fatal("v3 client not disconnected after a 10 KB publish")
			}
		})

		t.Run("paho v5 publish above the limit is disconnected", func(t *testing.T) {
			// The CONNACK advertises the limit (Mochi alone does not); a
			// client that sends more anyway is refused by the server.
			c := v5Dial(t, srv, "alice", "big5", alice)
			if ca := c.Connack; ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 4096 {
				t.Fatalf("CONNACK does not advertise Maximum Packet Size 4096: %+v", ca.Properties)
			}
			if rc, err := c.Publish("im/u/alice", 1, []byte(strings.Repeat("a", 2000))); err != nil || rc != 0 {
				t.Fatalf("publish under the limit: 0x%02x %v", rc, err)
			}
			c.Await(t, wait, map[string]any{"kind": "msg", "from": "alice"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			acked := make(chan error, 1)
			go func() {
				pr, err := c.Client.Publish(ctx, &pahov5.Publish{Topic: "im/u/alice", QoS: 1, Payload: []byte(strings.Repeat("b", 10<<10))})
				if err == nil {
					err = fmt.Errorf("10 KB publish acknowledged with 0x%02x", pr.ReasonCode)
					acked <- err
					return
				}
				acked <- nil
			}()
			select {
			case <-c.Done():
			case <-time.After(wait):
				cancel()
				t.Fatalf("v5 client not disconnected after a 10 KB publish (%v)", <-acked)
			}
			cancel()
			if err := <-acked; err != nil {
				t.Fatal(err)
			}
		})
	})
}

// allowAll starts a bare broker on a free loopback TCP port that lets every
// client in. The test closes it.
func allowAll(t *testing.T) *broker.Broker {
	t.Helper()
	cfg := config.Default().MQTT
	cfg.Addr, cfg.WSAddr = "127.0.0.1:0", ""
	b, err := broker.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return b
}

// awaitClose waits for the result of a Close on closed: it fails if Close
// failed, or with stuck if no result came within wait.
func awaitClose(t *testing.T, closed <-chan error, stuck string) {
	t.Helper()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(wait):
		t.Fatal(stuck)
	}
}

// TestCloseWithWriterQueued closes the broker while a writer is queued on
// Mochi's client map, deterministically: Mochi's own listener close path
// (Clients.GetByListener) takes the map's read lock twice, so a writer that
// queues between the two deadlocks Server.Close for good
// (mochi-mqtt/server#488; in real life a client connecting or leaving at
// shutdown). Go's RWMutex makes the interleaving forcible: while a first
// writer holds the lock, Close queues as a reader and a second writer queues
// behind the first; when the first unlocks, Close's reader is admitted and
// the second writer is then pending before Close asks for the lock again.
// With one P the woken writer runs before the woken reader (it takes the
// scheduler's next slot last), which makes the interleaving reliable.
func TestCloseWithWriterQueued(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// The race detector randomises the scheduler, so a few rounds.
	for round := 0; round < 30; round++ {
		b := allowAll(t)
		clients := broker.MochiServer(b).Clients

		clients.Lock() // first writer
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		secondDone := make(chan struct{})
		go func() { // second writer
			defer close(secondDone)
			clients.Lock()
			//lint:ignore SA2001 an empty critical section is the point
			clients.Unlock()
		}()
		// Wait until Close is blocked on the read lock and the second writer
		// on the lock, as goroutine stacks show.
		testutil.Eventually(t, wait, func() error {
			buf := make([]byte, 1<<20)
			var reader, writer bool
			for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
				if strings.Contains(g, "(*Server).Close(") && strings.Contains(g, "sync.(*RWMutex).RLock(") {
					reader = true
				}
				if strings.Contains(g, "TestCloseWithWriterQueued.func2") && strings.Contains(g, "sync.(*RWMutex).Lock(") {
					writer = true
				}
			}
			if !reader || !writer {
				return fmt.Errorf("close blocked on the read lock: %v, second writer queued: %v", reader, writer)
			}
			return nil
		})
		clients.Unlock()

		awaitClose(t, closed, fmt.Sprintf("round %d: Server.Close deadlocked with a writer queued on the client map (mochi-mqtt/server#488)", round))
		<-secondDone
	}
}

// TestCloseDisconnectsClients closes the broker while half of its clients
// leave on their own: Close returns, and disconnects those that stayed.
func TestCloseDisconnectsClients(t *testing.T) {
	const clients = 64
	for round := 0; round < 5; round++ {
		b := allowAll(t)
		conns := make([]net.Conn, clients)
		for i := range conns {
			conn := dial(t, b.Addr("tcp"))
			_ = conn.SetDeadline(time.Now().Add(wait))
			if _, err := conn.Write(connectPacket(4, fmt.Sprintf("c%d", i), "u", "p")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := readPacket(bufio.NewReader(conn)); err != nil {
				t.Fatalf("CONNACK: %v", err)
			}
			conns[i] = conn
		}
		testutil.Eventually(t, wait, func() error {
			if !b.Connected(fmt.Sprintf("c%d", clients-1)) {
				return errors.New("last client not registered yet")
			}
			return nil
		})
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range conns[:clients/2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c.Close()
			}()
		}
		closed := make(chan error, 1)
		go func() {
			<-start
			closed <- b.Close()
		}()
		close(start)
		awaitClose(t, closed, fmt.Sprintf("round %d: Close did not return", round))
		wg.Wait()
		for _, c := range conns[clients/2:] {
			awaitClosed(t, c, c)
		}
	}
}

// TestLargePayloadPassesReadBuffer: a publish far larger than the
// connection's read buffer (1 KiB), up to chat.max_payload, is read whole and
// delivered.
func TestLargePayloadPassesReadBuffer(t *testing.T) {
	srv := testutil.StartServer(t, "sqlite")
	alice, bob := srv.User(t, "alice"), srv.User(t, "bob")
	a, b := srv.Connect(t, "alice", "a", alice), srv.Connect(t, "bob", "b", bob)
	blob := strings.Repeat("x", 63<<10)
	a.MustPublish(t, "im/u/bob", 1, `{"cid":"big","type":"custom","body":{"blob":"`+blob+`"}}`)
	ev := b.Await(t, wait, map[string]any{"kind": "msg", "cid": "big"})
	if got := ev["body"].(map[string]any)["blob"]; got != blob {
		t.Fatalf("blob of %d bytes delivered as %v bytes", len(blob), len(fmt.Sprint(got)))
	}
}
