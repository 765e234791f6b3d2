// Package broker builds mqim's embedded Mochi MQTT server: listeners (TCP,
// TLS, WebSocket) with a CONNECT deadline, capabilities sized for a chat
// server, and the shared logger with packet payloads redacted. It offers the
// rest of mqim two things: deliver an event to a topic, and tell whether a
// device is connected.
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/configs"
)

// Broker wraps the Mochi server. Its methods are safe for concurrent use.
type Broker struct {
	srv    *mqtt.Server
	log    *slog.Logger
	mu     sync.Mutex
	lns    []listeners.Listener
	closed bool
}

// New builds the server and its listeners from cfg; nothing listens until
// Start. Hooks are added with AddHook before Start.
func New(cfg configs.MQTT, log *slog.Logger) (*Broker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	// Chat needs nothing above QoS 1, and Mochi answers a refused QoS 2
	// publish with a PUBACK (mochi-mqtt/server#510).
	caps.MaximumQos = 1
	caps.MaximumClientWritesPending = int32(cfg.MaxWritesPending)
	caps.MaximumInflight = cfg.MaxInflight
	caps.ReceiveMaximum = cfg.ReceiveMaximum
	caps.MaximumSessionExpiryInterval = uint32(cfg.MaxSessionExpiry / time.Second)
	caps.MaximumMessageExpiryInterval = int64(cfg.MaxMessageExpiry / time.Second)
	if cfg.MaxClients > 0 {
		caps.MaximumClients = cfg.MaxClients
	}
	// Retained messages are refused on im/ by the ACL hook; shared
	// subscriptions likewise. Both stay available for plain-broker topics.
	b := &Broker{log: log}
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient:             true,
		Capabilities:             caps,
		Logger:                   log,
		SysTopicResendInterval:   int64(cfg.SysTopicInterval / time.Second),
		ClientNetWriteBufferSize: 4096,
		ClientNetReadBufferSize:  4096,
	})
	if err := b.srv.AddHook(&limitsHook{maxPacket: cfg.MaxPacketSize}, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	var tlsCfg *tls.Config
	if cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("broker: tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	add := func(l listeners.Listener) {
		b.lns = append(b.lns, &deadlineListener{Listener: l, timeout: cfg.ConnectTimeout, srv: b.srv})
	}
	if cfg.Addr != "" {
		add(listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Addr}))
	}
	if cfg.TLSAddr != "" {
		add(listeners.NewTCP(listeners.Config{ID: "tls", Address: cfg.TLSAddr, TLSConfig: tlsCfg}))
	}
	if cfg.WSAddr != "" {
		add(newWebsocket("ws", cfg.WSAddr, nil, cfg.ConnectTimeout, cfg.MaxPacketSize))
	}
	return b, nil
}

// Server exposes the Mochi server to the hooks.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// AddHook registers a Mochi hook; call before Start.
func (b *Broker) AddHook(h mqtt.Hook, config any) error { return b.srv.AddHook(h, config) }

// Start opens the listeners and starts serving. It does not block.
func (b *Broker) Start() error {
	for _, l := range b.lns {
		if err := b.srv.AddListener(l); err != nil {
			return fmt.Errorf("broker: listen %s: %w", l.ID(), err)
		}
	}
	return b.srv.Serve()
}

// Addr returns the bound address of the listener with the given id ("tcp",
// "tls", "ws"), or "" if there is none.
func (b *Broker) Addr(id string) string {
	for _, l := range b.lns {
		if l.ID() == id {
			return l.Address()
		}
	}
	return ""
}

// Listening tells whether the broker has been started and not closed.
func (b *Broker) Listening() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed && len(b.lns) > 0
}

// Close disconnects everyone and stops the listeners. Safe to call twice.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.srv.Close()
}

// Deliver publishes payload on topic from the server itself, at qos, to every
// subscriber the ACL lets read it. It runs the fan-out synchronously in the
// caller's goroutine but never blocks on a slow subscriber (Mochi drops
// instead, and the store remains the source of truth).
func (b *Broker) Deliver(topic string, payload []byte, qos byte) error {
	return b.srv.Publish(topic, payload, false, qos)
}

// Connected tells whether a device (client id) has a live connection.
func (b *Broker) Connected(clientID string) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	return ok && !cl.Closed() && !cl.Net.Inline
}

// Disconnect closes every live connection whose username is userID.
func (b *Broker) Disconnect(userID string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() || string(cl.Properties.Username) != userID {
			continue
		}
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}

// deadlineListener closes connections that do not complete CONNECT in time.
// It wraps the Mochi listener rather than the net.Listener because the
// WebSocket upgrade clears deadlines set on the raw socket; Mochi replaces
// the deadline with the keepalive once CONNECT is read.
//
// It also owns closing its connections, working around two Mochi v2.7.9
// shutdown bugs: the CloseFn Mochi passes lists clients with
// Clients.GetByListener, which takes the read lock twice and deadlocks
// Server.Close against a concurrent connect or disconnect
// (mochi-mqtt/server#488); and Mochi counts connections with a WaitGroup
// whose Add runs on the connection's goroutine, racing with the Wait in
// Server.Close. Close therefore disconnects the clients itself, closes the
// connections still before CONNECT, and returns only when every connection
// it let through has ended, so Mochi's Wait finds nothing left to wait for.
type deadlineListener struct {
	listeners.Listener
	timeout time.Duration
	srv     *mqtt.Server

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
	active  sync.WaitGroup // Add under mu while !closing, so before Wait
}

// Close implements listeners.Listener.
func (l *deadlineListener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(func(id string) {
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Net.Inline && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.active.Wait()
}

// Serve implements listeners.Listener.
func (l *deadlineListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			return c.Close()
		}
		if l.conns == nil {
			l.conns = map[net.Conn]struct{}{}
		}
		l.conns[c] = struct{}{}
		l.active.Add(1)
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			l.active.Done()
		}()
		_ = c.SetDeadline(time.Now().Add(l.timeout))
		err := establish(id, c)
		if isTimeout(err) {
			return nil // a silent client is routine, not an error to log
		}
		return err
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
