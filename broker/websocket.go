package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener is MQTT over WebSocket. It replaces Mochi's listener, which
// binds its port in the background (so a taken port is only logged and
// "listening" is reported too early) and holds a connection that never
// upgrades for a fixed 60 s. This one binds in Init, and its HTTP server
// gives the whole upgrade the CONNECT deadline.
type wsListener struct {
	id       string
	addr     string
	tls      *tls.Config
	deadline time.Duration
	maxFrame int64

	ln  net.Listener
	srv *http.Server
	log *slog.Logger
	up  websocket.Upgrader
	mu  sync.Mutex
}

var _ listeners.Listener = (*wsListener)(nil)

func newWebsocket(id, addr string, tlsCfg *tls.Config, deadline time.Duration, maxPacket uint32) *wsListener {
	return &wsListener{id: id, addr: addr, tls: tlsCfg, deadline: deadline, maxFrame: int64(maxPacket) + 16,
		up: websocket.Upgrader{
			// "mqtt" for MQTT 3.1.1 and 5, "mqttv3.1" for MQTT 3.1 clients.
			Subprotocols: []string{"mqtt", "mqttv3.1"},
			// Browsers on any origin may connect: MQTT authenticates with the
			// user's token in CONNECT, not with cookies, so there is nothing
			// for a foreign page to ride on.
			CheckOrigin: func(*http.Request) bool { return true },
		}}
}

func (l *wsListener) ID() string { return l.id }

func (l *wsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *wsListener) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

// Init binds the port, so that a failure stops the server from starting.
func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

// Serve accepts upgrades until Close. Each connection is handed to Mochi
// and served on the request's goroutine for its whole life.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := l.up.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		defer c.Close()
		c.SetReadLimit(l.maxFrame)
		if err := establish(l.id, &wsConn{Conn: c.NetConn(), c: c}); err != nil {
			l.log.Debug("websocket connection ended", "error", err)
		}
	})
	l.mu.Lock()
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: l.deadline,
		ReadTimeout:       l.deadline, // covers the upgrade only: the hijacked conn is Mochi's
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	srv := l.srv
	l.mu.Unlock()
	if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "listener", l.id, "error", err)
	}
}

// Close stops accepting and closes this listener's clients.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	srv := l.srv
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	} else if l.ln != nil {
		_ = l.ln.Close()
	}
	closeClients(l.id)
}

// wsConn presents a WebSocket as the byte stream Mochi reads MQTT from:
// binary messages in, one binary message per write out.
type wsConn struct {
	net.Conn
	c   *websocket.Conn
	r   io.Reader
	wmu sync.Mutex
}

func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			mt, r, err := w.c.NextReader()
			if err != nil {
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary frames")
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (w *wsConn) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wsConn) Close() error { return w.c.Close() }

// SetDeadline is called by Mochi's read goroutine while its write loop
// writes; gorilla's write deadline is a plain field read by every write, so
// it is set under the write lock.
func (w *wsConn) SetDeadline(t time.Time) error {
	if err := w.c.SetReadDeadline(t); err != nil {
		return err
	}
	return w.SetWriteDeadline(t)
}

func (w *wsConn) SetReadDeadline(t time.Time) error { return w.c.SetReadDeadline(t) }

func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.c.SetWriteDeadline(t)
}
