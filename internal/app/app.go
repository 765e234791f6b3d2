// Package app wires mqim together: it is the one place that knows every
// concrete type. It builds the store, the broker, the chat service, the MQTT
// hooks, push and the HTTP API from a configuration, passing each its
// collaborators, and owns start and stop order. Only cmd/ and tests import
// it.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqim/mqim/api"
	"github.com/mqim/mqim/broker"
	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/logging"
	"github.com/mqim/mqim/internal/token"
	"github.com/mqim/mqim/push"
	"github.com/mqim/mqim/push/gorush"
	"github.com/mqim/mqim/store/mysql"
	"github.com/mqim/mqim/store/sqlite"
	"github.com/mqim/mqim/store/sqlstore"
)

// Version is set at build time with -ldflags "-X ...app.Version=...".
var Version = "dev"

// App is a running (or ready to run) mqim server.
type App struct {
	Config config.Config
	Log    *slog.Logger
	Store  *sqlstore.Store
	Chat   *chat.Service
	Broker *broker.Broker

	// NewServiceKey is set when this start generated the service key; it is
	// shown once and never stored in clear.
	NewServiceKey string
	// Migrated counts the migrations applied at open.
	Migrated int

	// Push is nil when no gorush URL is configured.
	Push     *push.Dispatcher
	Planner  *push.Planner
	Registry *prometheus.Registry

	httpLn  net.Listener
	httpSrv *http.Server
}

// NewLogger builds the shared logger (see package logging).
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	return logging.New(cfg.Level, cfg.Format, w)
}

// OpenStore opens the configured store and applies pending migrations.
func OpenStore(ctx context.Context, cfg config.Config) (*sqlstore.Store, int, error) {
	var st *sqlstore.Store
	var err error
	switch cfg.Store.Driver {
	case "mysql":
		st, err = mysql.Open(ctx, cfg.Store.DSN, cfg.Store.MaxOpenConns)
	default:
		path := cfg.Store.DSN
		if path == "" {
			path = filepath.Join(cfg.DataDir, "mqim.db")
		}
		st, err = sqlite.Open(ctx, path, cfg.Store.MaxOpenConns)
	}
	if err != nil {
		return nil, 0, err
	}
	n, err := st.Migrate(ctx)
	if err != nil {
		st.Close()
		return nil, 0, err
	}
	return st, n, nil
}

// New builds everything from cfg without opening any listener.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a := &App{Config: cfg, Log: log}
	jwtKey, err := a.jwtSecret()
	if err != nil {
		return nil, err
	}
	signer, err := token.NewSigner(jwtKey)
	if err != nil {
		return nil, err
	}
	keyHash, err := a.serviceKeyHash()
	if err != nil {
		return nil, err
	}
	a.Store, a.Migrated, err = OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if a.Broker, err = broker.New(cfg.MQTT, log); err != nil {
		a.Store.Close()
		return nil, err
	}
	a.Registry = prometheus.NewRegistry()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var committed []chat.Committed
	if cfg.Push.GorushURL != "" {
		a.Push = push.NewDispatcher(gorush.New(cfg.Push.GorushURL, cfg.Push.Timeout, nil, log), push.DispatcherOptions{
			Queue: cfg.Push.Queue, Workers: cfg.Push.Workers, Log: log, Metrics: push.NewMetrics(a.Registry),
			MaxRetries: noneIsNegative(cfg.Push.MaxRetries), BaseBackoff: cfg.Push.Backoff,
			Prune: a.Store.DeleteToken,
		})
		a.Planner = push.NewPlanner(push.PlannerOptions{Store: a.Store, Presence: a.Broker, Out: a.Push, Log: log,
			IOSTopic: cfg.Push.IOSTopic, Queue: cfg.Push.Queue, Workers: 2})
		committed = append(committed, a.Planner)
	} else {
		log.Info("push is off: no push.gorush_url configured")
	}
	a.Chat = chat.New(chat.Options{Store: a.Store, Log: log, Config: cfg.Chat, Limits: cfg.Limits, Tokens: signer, CacheTTL: cfg.MQTT.ACLCacheTTL,
		Deliverer: a.Broker, Subscriber: a.Broker, Disconnector: a.Broker, Committed: committed})
	a.registerMetrics()
	for _, h := range []struct {
		hook mqtt.Hook
		cfg  any
	}{
		{new(hooks.Auth), &hooks.AuthOptions{Users: a.Chat, Members: a.Chat, Broker: a.Broker, OpenTopics: cfg.MQTT.OpenTopics}},
		{new(hooks.Sessions), &hooks.SessionOptions{Broker: a.Broker, Groups: a.Store, Members: a.Chat}},
		{new(hooks.Chat), &hooks.ChatOptions{Broker: a.Broker, Chat: a.Chat, Config: cfg.Chat}},
	} {
		if err := a.Broker.AddHook(h.hook, h.cfg); err != nil {
			a.Store.Close()
			return nil, fmt.Errorf("hook %s: %w", h.hook.ID(), err)
		}
	}
	a.httpSrv = &http.Server{
		Handler: api.New(api.Options{Chat: a.Chat, Tokens: signer, ServiceKeyHash: keyHash,
			Auth: cfg.Auth, HTTP: cfg.HTTP, Log: log, Presence: a.Broker, Ready: a.ready,
			Metrics: promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{})}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// Start opens the listeners: push and the chat service first, then MQTT,
// then HTTP.
func (a *App) Start() error {
	if a.Push != nil {
		a.Push.Start()
		a.Planner.Start()
	}
	a.Chat.Start()
	if err := a.Broker.Start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.Config.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	a.httpLn = ln
	go func() {
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("http server stopped", "error", err)
		}
	}()
	return nil
}

// HTTPAddr is the bound HTTP address (after Start).
func (a *App) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// Close stops HTTP, then MQTT, then the chat service (finishing commits under
// way), then the store.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.httpSrv.Shutdown(ctx)
	_ = a.Broker.Close()
	a.Chat.Close()
	if a.Push != nil {
		a.Planner.Close()
		_ = a.Push.Close(ctx)
	}
	return a.Store.Close()
}

// ready tells whether the server can serve: store reachable, broker
// listening.
func (a *App) ready(ctx context.Context) error {
	if err := a.Store.Ping(ctx); err != nil {
		return errors.New("store unreachable")
	}
	if !a.Broker.Listening() {
		return errors.New("broker not listening")
	}
	return nil
}

// noneIsNegative maps "0 retries" to the dispatcher's "never" (its zero
// means "the default").
func noneIsNegative(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// registerMetrics exposes the chat service's counters.
func (a *App) registerMetrics() {
	a.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mqim_messages_stored_total", Help: "Messages stored (group commits included)."},
			func() float64 { _, n := a.Chat.Stats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mqim_commits_total", Help: "Transactions that stored messages."},
			func() float64 { n, _ := a.Chat.Stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqim_commit_queue", Help: "Writes waiting for the group committer."},
			func() float64 { return float64(a.Chat.QueueLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqim_mqtt_clients_connected", Help: "Connected MQTT clients."},
			func() float64 { return float64(a.Broker.ClientsConnected()) }),
	)
	if a.Planner != nil {
		a.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mqim_push_decisions_dropped_total",
			Help: "Messages whose push decision was dropped because the planner queue was full."},
			func() float64 { return float64(a.Planner.Dropped.Load()) }))
	}
}

// jwtSecret returns the configured key, or reads or generates
// <data_dir>/jwt.secret.
func (a *App) jwtSecret() ([]byte, error) {
	if a.Config.Auth.JWTSecret != "" {
		return []byte(a.Config.Auth.JWTSecret), nil
	}
	path := filepath.Join(a.Config.DataDir, "jwt.secret")
	b, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("jwt secret: %w", err)
	}
	secret := randomHex(32)
	if err := writeSecret(path, secret); err != nil {
		return nil, err
	}
	return []byte(secret), nil
}

// serviceKeyHash returns the hash of the configured key, or reads
// <data_dir>/service.key.hash, or generates a key (NewServiceKey) and stores
// only its hash.
func (a *App) serviceKeyHash() (string, error) {
	if a.Config.Auth.ServiceKey != "" {
		return token.HashKey(a.Config.Auth.ServiceKey), nil
	}
	path := filepath.Join(a.Config.DataDir, "service.key.hash")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("service key: %w", err)
	}
	a.NewServiceKey = "sk_" + randomHex(24)
	hash := token.HashKey(a.NewServiceKey)
	return hash, writeSecret(path, hash)
}

func writeSecret(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
