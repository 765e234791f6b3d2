// Package config holds mqim's configuration: one typed struct, its defaults,
// loading from YAML and MQIM_<SECTION>_<KEY> environment variables, and
// validation. configs/mqim.yaml documents every key with its default (a test
// checks that it says exactly what Default does).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Zero values are never meaningful on their
// own: Default fills every field, a file and the environment override it.
type Config struct {
	DataDir string  `yaml:"data_dir"`
	Store   Store   `yaml:"store"`
	MQTT    MQTT    `yaml:"mqtt"`
	HTTP    HTTP    `yaml:"http"`
	Auth    Auth    `yaml:"auth"`
	Chat    Chat    `yaml:"chat"`
	Push    Push    `yaml:"push"`
	Limits  Limits  `yaml:"limits"`
	Log     Log     `yaml:"log"`
	Debug   Debug   `yaml:"debug"`
	Cluster Cluster `yaml:"cluster"`
	// Webhooks are the product backend's receivers of signed events
	// (docs/webhooks.md); Webhook tunes their delivery.
	Webhooks []Webhook      `yaml:"webhooks"`
	Webhook  WebhookOptions `yaml:"webhook"`
	// BeforeSend is the synchronous moderation hook; off without a URL.
	BeforeSend BeforeSend `yaml:"before_send"`
}

// Webhook is one receiver of webhook events.
type Webhook struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
	// Events filters by type: exact types ("message.created") or prefixes
	// ending in ".*" ("group.*"). Empty: every event.
	Events []string `yaml:"events"`
}

// WebhookOptions tune the delivery of webhook events, the same for every
// receiver; each receiver has its own queue and workers.
type WebhookOptions struct {
	Queue   int           `yaml:"queue"`   // events waiting per receiver; beyond it they are dropped and counted
	Workers int           `yaml:"workers"` // concurrent requests per receiver
	Timeout time.Duration `yaml:"timeout"` // per request
	// Retries of a failed request (network error, timeout, 5xx; never a
	// 4xx), after a full-jitter exponential backoff from Backoff, capped at
	// MaxBackoff.
	MaxRetries int           `yaml:"max_retries"`
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// BeforeSend is the synchronous hook that may refuse or rewrite a message
// before it is stored.
type BeforeSend struct {
	URL        string        `yaml:"url"` // empty: off
	Secret     string        `yaml:"secret"`
	Timeout    time.Duration `yaml:"timeout"`
	FailClosed bool          `yaml:"fail_closed"` // refuse as unavailable when the hook cannot answer
}

// Store selects the SQL database.
type Store struct {
	Driver       string `yaml:"driver"` // "sqlite" or "mysql"
	DSN          string `yaml:"dsn"`    // empty with sqlite: <data_dir>/mqim.db
	MaxOpenConns int    `yaml:"max_open_conns"`
}

// MQTT configures the embedded broker and its listeners.
type MQTT struct {
	Addr             string        `yaml:"addr"`    // MQTT over TCP; empty disables
	WSAddr           string        `yaml:"ws_addr"` // MQTT over WebSocket; empty disables
	TLSAddr          string        `yaml:"tls_addr"`
	TLSCert          string        `yaml:"tls_cert"`
	TLSKey           string        `yaml:"tls_key"`
	ConnectTimeout   time.Duration `yaml:"connect_timeout"`    // close a connection with no CONNECT after this
	MaxPacketSize    uint32        `yaml:"max_packet_size"`    // bytes
	MaxWritesPending int           `yaml:"max_writes_pending"` // per client outbound queue
	MaxInflight      uint16        `yaml:"max_inflight"`       // per client stored QoS>0 messages
	ReceiveMaximum   uint16        `yaml:"receive_maximum"`    // per client inbound QoS>0 quota
	MaxSessionExpiry time.Duration `yaml:"max_session_expiry"` // cap for persistent sessions
	MaxMessageExpiry time.Duration `yaml:"max_message_expiry"` // cap for queued messages
	MaxClients       int64         `yaml:"max_clients"`        // 0 = unlimited
	OpenTopics       bool          `yaml:"open_topics"`        // allow users any topic outside im/
	SysTopicInterval time.Duration `yaml:"sys_topic_interval"` // $SYS refresh
	ACLCacheTTL      time.Duration `yaml:"acl_cache_ttl"`      // membership cache lifetime
	// Per-user caps: connected devices, persistent sessions, and the bytes
	// of events queued (sent and not yet acknowledged) for one session.
	MaxDevicesPerUser    int   `yaml:"max_devices_per_user"`
	MaxSessionsPerUser   int   `yaml:"max_sessions_per_user"`
	MaxSessionQueueBytes int64 `yaml:"max_session_queue_bytes"`
	// ReplayMax is the most messages replayed from the store to a
	// persistent session that reconnects; beyond it the device gets a sync
	// event and catches up itself.
	ReplayMax int `yaml:"replay_max"`
}

// HTTP configures the API listener.
type HTTP struct {
	Addr         string        `yaml:"addr"`
	MaxBodyBytes int64         `yaml:"max_body_bytes"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MetricsToken, when set, is a bearer token that may read /metrics (as
	// the service key always may). MetricsPublic serves it to anyone.
	MetricsToken  string `yaml:"metrics_token"`
	MetricsPublic bool   `yaml:"metrics_public"`
	// CORSOrigins are the browser origins (scheme://host[:port], exactly as
	// browsers send them in Origin) allowed to call the API from their
	// pages, or "*" for any. Empty: none (no CORS headers at all).
	CORSOrigins []string `yaml:"cors_origins"`
	// Demo serves the web chat client (clients/web) at /demo/.
	Demo bool `yaml:"demo"`
}

// Auth configures tokens and the service key.
type Auth struct {
	// JWTSecret signs access tokens (HS256). Empty: read from or generated into
	// <data_dir>/jwt.secret.
	JWTSecret string `yaml:"jwt_secret"`
	// ServiceKey lets the product backend act on the API. Empty: a hash is read
	// from <data_dir>/service.key.hash, or a key is generated and printed once.
	ServiceKey string        `yaml:"service_key"`
	TokenTTL   time.Duration `yaml:"token_ttl"`
	MaxTTL     time.Duration `yaml:"max_token_ttl"`
}

// Chat configures the message pipeline.
type Chat struct {
	MaxTextChars   int           `yaml:"max_text_chars"`
	MaxPayload     int           `yaml:"max_payload"`
	MaxExt         int           `yaml:"max_ext"`
	BatchMax       int           `yaml:"batch_max"` // messages per group commit
	CommitTimeout  time.Duration `yaml:"commit_timeout"`
	MaxGroupMember int           `yaml:"max_group_members"`
	// MaxGroupsPerUser caps the groups one user belongs to (create, add,
	// join, approve).
	MaxGroupsPerUser int `yaml:"max_groups_per_user"`
	// DirectPolicy says who may send 1:1 to whom: DirectAnyone,
	// DirectFriends or DirectFriendsOrSharedGroup.
	DirectPolicy string `yaml:"direct_policy"`
	// Per-user caps: pending outgoing friend requests, friends, blocks.
	MaxFriendRequests int `yaml:"max_friend_requests"`
	MaxFriends        int `yaml:"max_friends"`
	MaxBlocks         int `yaml:"max_blocks"`
	// RecallWindow is how long after sending a sender may recall a message
	// (group owners and admins may recall any group message at any time).
	// 0: senders cannot recall.
	RecallWindow time.Duration `yaml:"recall_window"`
}

// The values of chat.direct_policy.
const (
	DirectAnyone               = "anyone"
	DirectFriends              = "friends"
	DirectFriendsOrSharedGroup = "friends_or_shared_group"
)

// Limits are the per-user rate limits: token buckets that refill at a
// sustained rate up to a burst. Past one, a request is refused as
// rate_limited with the time after which it would pass. A rate or burst of
// 0 turns that limit off.
type Limits struct {
	// Messages one user sends (MQTT and HTTP), per second, and the burst.
	SendRate  float64 `yaml:"send_rate"`
	SendBurst int     `yaml:"send_burst"`
	// Typing notices one user relays, per second, and the burst.
	TypingRate  float64 `yaml:"typing_rate"`
	TypingBurst int     `yaml:"typing_burst"`
	// Groups one user creates, per hour, and the burst.
	GroupsPerHour float64 `yaml:"groups_per_hour"`
	GroupBurst    int     `yaml:"group_burst"`
	// Failed logins (a refused MQTT CONNECT or POST /v1/login), per minute
	// and burst, counted per user id and, separately, per remote address.
	LoginFailuresPerMinute float64 `yaml:"login_failures_per_minute"`
	LoginFailureBurst      int     `yaml:"login_failure_burst"`
	AddrFailuresPerMinute  float64 `yaml:"addr_failures_per_minute"`
	AddrFailureBurst       int     `yaml:"addr_failure_burst"`
	// Friend requests one user sends, per hour, and the burst.
	FriendRequestsPerHour float64 `yaml:"friend_requests_per_hour"`
	FriendRequestBurst    int     `yaml:"friend_request_burst"`
}

// Push configures offline push through gorush.
type Push struct {
	GorushURL string        `yaml:"gorush_url"` // empty: push off
	Timeout   time.Duration `yaml:"timeout"`
	Queue     int           `yaml:"queue"`
	Workers   int           `yaml:"workers"`
	IOSTopic  string        `yaml:"ios_topic"`
	// Retries of a failed gorush request (network error, 5xx), with
	// exponential backoff from Backoff, full jitter, capped at 30s.
	MaxRetries int           `yaml:"max_retries"`
	Backoff    time.Duration `yaml:"backoff"`
	// Via is PushViaGorush (the default: ios, android and huawei devices
	// through gorush, the other platforms as push.requested webhook events)
	// or PushViaWebhook (every platform as push.requested; gorush unused).
	Via string `yaml:"via"`
}

// The values of push.via.
const (
	PushViaGorush  = "gorush"
	PushViaWebhook = "webhook"
)

// Log configures the shared slog logger.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Debug holds switches for diagnosing a running server.
type Debug struct {
	// PprofAddr, when set, serves net/http/pprof (/debug/pprof/) on its own
	// listener at this address, never on the API's. Empty: off. Anyone who
	// reaches it can profile the process: keep it on loopback.
	PprofAddr string `yaml:"pprof_addr"`
}

// Cluster joins this node to others over NATS (docs/cluster.md). With
// NATSURL empty the node is alone: events go from the chat service straight
// to its own broker, and no NATS is needed.
type Cluster struct {
	// NATSURL is the NATS server (or a comma-separated list of a NATS
	// cluster's servers), e.g. nats://nats:4222. Empty: one node.
	NATSURL string `yaml:"nats_url"`
	// Prefix starts every subject mqim uses, so that several mqim clusters
	// (or other applications) can share one NATS.
	Prefix string `yaml:"prefix"`
	// NodeID names this node to the others; unique in the cluster. Empty:
	// the host name and a random suffix, new at every start.
	NodeID string `yaml:"node_id"`
	// Credentials, as the NATS Go client takes them: user and password, a
	// token, a .creds file (JWT and NKey seed) or an NKey seed file. At most
	// one kind.
	NATSUser     string `yaml:"nats_user"`
	NATSPassword string `yaml:"nats_password"`
	NATSToken    string `yaml:"nats_token"`
	NATSCreds    string `yaml:"nats_creds"`
	NATSNKeyFile string `yaml:"nats_nkey_file"`
	// TLS: the CA that signed the NATS server's certificate, and this
	// node's client certificate and key when NATS asks for one.
	NATSTLSCA   string `yaml:"nats_tls_ca"`
	NATSTLSCert string `yaml:"nats_tls_cert"`
	NATSTLSKey  string `yaml:"nats_tls_key"`
	// Heartbeat is how often a node tells the others it is alive; a node
	// silent for three heartbeats is taken for gone (its devices offline).
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// Enabled tells whether this node is part of a cluster.
func (c Cluster) Enabled() bool { return c.NATSURL != "" }

// Default returns the configuration used when nothing overrides it. It is
// the single place where defaults live; mqim.yaml mirrors it (a test checks).
func Default() Config {
	return Config{
		DataDir: "./data",
		Store:   Store{Driver: "sqlite", MaxOpenConns: 16},
		MQTT: MQTT{
			Addr:             ":1883",
			WSAddr:           ":8083",
			ConnectTimeout:   10 * time.Second,
			MaxPacketSize:    256 << 10,
			MaxWritesPending: 256,
			MaxInflight:      8192,
			ReceiveMaximum:   1024,
			MaxSessionExpiry: 7 * 24 * time.Hour,
			MaxMessageExpiry: 7 * 24 * time.Hour,
			SysTopicInterval: 30 * time.Second,
			ACLCacheTTL:      5 * time.Minute,
			// A person has a few devices; 32 is far above any, and keeps one
			// account from holding hundreds of connections.
			MaxDevicesPerUser:    32,
			MaxSessionsPerUser:   16,
			MaxSessionQueueBytes: 4 << 20,
			ReplayMax:            10000,
		},
		HTTP: HTTP{
			Addr:         ":8080",
			MaxBodyBytes: 1 << 20,
			ReadTimeout:  30 * time.Second,
			WriteTimeout: 30 * time.Second,
			CORSOrigins:  []string{},
			Demo:         true,
		},
		Auth: Auth{TokenTTL: 7 * 24 * time.Hour, MaxTTL: 90 * 24 * time.Hour},
		Chat: Chat{
			MaxTextChars:     5000,
			MaxPayload:       64 << 10,
			MaxExt:           4 << 10,
			BatchMax:         256,
			CommitTimeout:    5 * time.Second,
			MaxGroupMember:   2000,
			MaxGroupsPerUser: 500,
			DirectPolicy:     DirectAnyone,
			// Far above what a person keeps, low enough to bound a user's rows
			// and the send path's per-user caches.
			MaxFriendRequests: 100,
			MaxFriends:        5000,
			MaxBlocks:         10000,
			RecallWindow:      2 * time.Minute,
		},
		Push: Push{Timeout: 30 * time.Second, Queue: 10000, Workers: 4, MaxRetries: 5, Backoff: 500 * time.Millisecond, Via: PushViaGorush},
		Limits: Limits{
			SendRate: 20, SendBurst: 200,
			TypingRate: 2, TypingBurst: 10,
			GroupsPerHour: 30, GroupBurst: 20,
			LoginFailuresPerMinute: 5, LoginFailureBurst: 10,
			AddrFailuresPerMinute: 60, AddrFailureBurst: 120,
			FriendRequestsPerHour: 60, FriendRequestBurst: 20,
		},
		Log:      Log{Level: "info", Format: "text"},
		Webhooks: []Webhook{},
		Webhook: WebhookOptions{Queue: 10000, Workers: 2, Timeout: 10 * time.Second, MaxRetries: 5,
			Backoff: time.Second, MaxBackoff: time.Minute},
		BeforeSend: BeforeSend{Timeout: 2 * time.Second},
		Cluster:    Cluster{Prefix: "mqim", Heartbeat: time.Second},
	}
}

// Load returns Default overridden by the YAML file at path (if path is not
// empty) and then by MQIM_<SECTION>_<KEY> variables from environ.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// applyEnv walks the struct by yaml tags: MQIM_MQTT_ADDR sets MQTT.Addr,
// MQIM_DATA_DIR sets DataDir.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "MQIM_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	return walk(reflect.ValueOf(cfg).Elem(), "MQIM", env)
}

func walk(v reflect.Value, prefix string, env map[string]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := walk(fv, name, env); err != nil {
				return err
			}
			continue
		}
		s, ok := env[name]
		if !ok {
			continue
		}
		if err := setValue(fv, s); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

func setValue(fv reflect.Value, s string) error {
	if fv.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.Slice:
		// A list is given as YAML or JSON (MQIM_WEBHOOKS='[{"url":...}]'); a
		// list of strings may also be comma-separated
		// (MQIM_HTTP_CORS_ORIGINS=https://a.example,https://b.example).
		if fv.Type().Elem().Kind() == reflect.String && !strings.HasPrefix(strings.TrimSpace(s), "[") {
			var xs []string
			for _, x := range strings.Split(s, ",") {
				if x = strings.TrimSpace(x); x != "" {
					xs = append(xs, x)
				}
			}
			fv.Set(reflect.ValueOf(xs))
			return nil
		}
		return yaml.Unmarshal([]byte(s), fv.Addr().Interface())
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(f)
	case reflect.Uint16, reflect.Uint32:
		n, err := strconv.ParseUint(s, 10, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetUint(n)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate refuses settings the server cannot run with, naming the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Store.Driver {
	case "sqlite":
	case "mysql":
		if c.Store.DSN == "" {
			bad("store.dsn", "is required with the mysql driver")
		}
	default:
		bad("store.driver", "%q is not sqlite or mysql", c.Store.Driver)
	}
	if c.Store.MaxOpenConns < 1 {
		bad("store.max_open_conns", "must be at least 1")
	}
	for key, addr := range map[string]string{"mqtt.addr": c.MQTT.Addr, "mqtt.ws_addr": c.MQTT.WSAddr, "mqtt.tls_addr": c.MQTT.TLSAddr, "http.addr": c.HTTP.Addr,
		"debug.pprof_addr": c.Debug.PprofAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	if c.HTTP.Addr == "" {
		bad("http.addr", "must not be empty")
	}
	if c.MQTT.Addr == "" && c.MQTT.WSAddr == "" && c.MQTT.TLSAddr == "" {
		bad("mqtt.addr", "at least one MQTT listener is required")
	}
	if c.MQTT.TLSAddr != "" && (c.MQTT.TLSCert == "" || c.MQTT.TLSKey == "") {
		bad("mqtt.tls_addr", "needs mqtt.tls_cert and mqtt.tls_key")
	}
	if c.MQTT.ConnectTimeout <= 0 {
		bad("mqtt.connect_timeout", "must be positive")
	}
	if c.MQTT.MaxPacketSize < 1024 {
		bad("mqtt.max_packet_size", "must be at least 1024 bytes")
	}
	if c.MQTT.MaxWritesPending < 1 {
		bad("mqtt.max_writes_pending", "must be at least 1")
	}
	if c.MQTT.MaxInflight < 1 || c.MQTT.ReceiveMaximum < 1 {
		bad("mqtt.max_inflight", "max_inflight and receive_maximum must be at least 1")
	}
	if c.MQTT.MaxSessionExpiry <= 0 || c.MQTT.MaxMessageExpiry <= 0 {
		bad("mqtt.max_session_expiry", "session and message expiry caps must be positive")
	}
	if c.MQTT.SysTopicInterval < time.Second {
		bad("mqtt.sys_topic_interval", "must be at least 1s")
	}
	if c.MQTT.MaxDevicesPerUser < 1 || c.MQTT.MaxSessionsPerUser < 0 || c.MQTT.MaxSessionQueueBytes < 64<<10 {
		bad("mqtt.max_devices_per_user", "max_devices_per_user must be at least 1, max_sessions_per_user not negative, max_session_queue_bytes at least 65536")
	}
	if c.MQTT.ReplayMax < 1 {
		bad("mqtt.replay_max", "must be at least 1")
	}
	l := c.Limits
	if l.SendRate < 0 || l.TypingRate < 0 || l.GroupsPerHour < 0 || l.LoginFailuresPerMinute < 0 || l.AddrFailuresPerMinute < 0 ||
		l.SendBurst < 0 || l.TypingBurst < 0 || l.GroupBurst < 0 || l.LoginFailureBurst < 0 || l.AddrFailureBurst < 0 ||
		l.FriendRequestsPerHour < 0 || l.FriendRequestBurst < 0 {
		bad("limits.send_rate", "rates and bursts must not be negative (0 turns a limit off)")
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		bad("http.max_body_bytes", "must be at least 1024")
	}
	for _, o := range c.HTTP.CORSOrigins {
		if !validOrigin(o) {
			bad("http.cors_origins", "%q is not \"*\" or an origin like https://app.example.com (scheme, host and port only)", o)
		}
	}
	if c.Auth.TokenTTL <= 0 || c.Auth.MaxTTL < c.Auth.TokenTTL {
		bad("auth.token_ttl", "must be positive and not above auth.max_token_ttl")
	}
	if c.Auth.JWTSecret != "" && len(c.Auth.JWTSecret) < 32 {
		bad("auth.jwt_secret", "must be at least 32 characters")
	}
	if c.Auth.ServiceKey != "" && len(c.Auth.ServiceKey) < 16 {
		bad("auth.service_key", "must be at least 16 characters")
	}
	if c.Chat.MaxTextChars < 1 || c.Chat.MaxPayload < 256 || c.Chat.MaxExt < 0 {
		bad("chat.max_text_chars", "text, payload and ext limits must be positive")
	}
	if uint32(c.Chat.MaxPayload) > c.MQTT.MaxPacketSize {
		bad("chat.max_payload", "must not exceed mqtt.max_packet_size")
	}
	if c.Chat.BatchMax < 1 || c.Chat.CommitTimeout <= 0 || c.Chat.MaxGroupMember < 2 || c.Chat.MaxGroupsPerUser < 1 {
		bad("chat.batch_max", "batch_max, commit_timeout, max_group_members and max_groups_per_user must be positive")
	}
	switch c.Chat.DirectPolicy {
	case DirectAnyone, DirectFriends, DirectFriendsOrSharedGroup:
	default:
		bad("chat.direct_policy", "%q is not anyone, friends or friends_or_shared_group", c.Chat.DirectPolicy)
	}
	if c.Chat.MaxFriendRequests < 1 || c.Chat.MaxFriends < 1 || c.Chat.MaxBlocks < 1 {
		bad("chat.max_friends", "max_friend_requests, max_friends and max_blocks must be at least 1")
	}
	if c.Chat.RecallWindow < 0 {
		bad("chat.recall_window", "must not be negative")
	}
	if c.Push.Queue < 1 || c.Push.Workers < 1 || c.Push.Timeout <= 0 || c.Push.MaxRetries < 0 || c.Push.Backoff <= 0 {
		bad("push.queue", "queue, workers, timeout and backoff must be positive, max_retries not negative")
	}
	if c.Push.GorushURL != "" && !strings.HasPrefix(c.Push.GorushURL, "http://") && !strings.HasPrefix(c.Push.GorushURL, "https://") {
		bad("push.gorush_url", "must be an http(s) URL")
	}
	switch c.Push.Via {
	case PushViaGorush, PushViaWebhook:
	default:
		bad("push.via", "%q is not gorush or webhook", c.Push.Via)
	}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if !httpURL(w.URL) {
			bad(key+".url", "must be an http(s) URL")
		}
		if len(w.Secret) < 16 {
			bad(key+".secret", "must be at least 16 characters")
		}
		for _, e := range w.Events {
			if !validEventFilter(e) {
				bad(key+".events", "%q is not an event type or a prefix such as group.*", e)
			}
		}
	}
	o := c.Webhook
	if o.Queue < 1 || o.Workers < 1 || o.Timeout <= 0 || o.MaxRetries < 0 || o.Backoff <= 0 || o.MaxBackoff < o.Backoff {
		bad("webhook.queue", "queue, workers, timeout and backoff must be positive, max_retries not negative, max_backoff at least backoff")
	}
	if b := c.BeforeSend; b.URL != "" {
		if !httpURL(b.URL) {
			bad("before_send.url", "must be an http(s) URL")
		}
		if len(b.Secret) < 16 {
			bad("before_send.secret", "must be at least 16 characters")
		}
	}
	if c.BeforeSend.Timeout <= 0 {
		bad("before_send.timeout", "must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	c.validateCluster(bad)
	return errors.Join(errs...)
}

// validateCluster checks the cluster section: a cluster shares one
// MySQL-compatible store and one set of secrets, or its nodes could not
// read each other's messages and tokens.
func (c *Config) validateCluster(bad func(key, format string, a ...any)) {
	cl := c.Cluster
	if !validSubjectToken(cl.Prefix) {
		bad("cluster.prefix", "%q must be one or more NATS subject tokens of letters, digits, '_' and '-', separated by '.'", cl.Prefix)
	}
	if cl.NodeID != "" && !validSubjectToken(strings.ReplaceAll(cl.NodeID, ".", "_")) {
		bad("cluster.node_id", "%q may hold only letters, digits, '_', '-' and '.'", cl.NodeID)
	}
	if cl.Heartbeat <= 0 {
		bad("cluster.heartbeat", "must be positive")
	}
	if !cl.Enabled() {
		return
	}
	if c.Store.Driver != "mysql" {
		bad("cluster.nats_url", "a cluster needs store.driver mysql (a MySQL-compatible store every node reaches): SQLite is a file on one machine")
	}
	if c.Auth.JWTSecret == "" {
		bad("auth.jwt_secret", "is required in a cluster: every node must verify the tokens the others sign")
	}
	if c.Auth.ServiceKey == "" {
		bad("auth.service_key", "is required in a cluster: every node must accept the same service key")
	}
	kinds := 0
	for _, v := range []string{cl.NATSUser + cl.NATSPassword, cl.NATSToken, cl.NATSCreds, cl.NATSNKeyFile} {
		if v != "" {
			kinds++
		}
	}
	if kinds > 1 {
		bad("cluster.nats_user", "give one kind of NATS credentials: user and password, token, creds file or nkey file")
	}
	if (cl.NATSTLSCert == "") != (cl.NATSTLSKey == "") {
		bad("cluster.nats_tls_cert", "nats_tls_cert and nats_tls_key go together")
	}
}

// validSubjectToken tells whether s is a dot-separated run of NATS
// subject tokens made of letters, digits, '_' and '-'.
func validSubjectToken(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validOrigin tells whether o is "*" or an origin as browsers send it:
// http or https, a host, an optional port, nothing else (no path, not even
// "/"), in lower case.
func validOrigin(o string) bool {
	if o == "*" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery && u.Opaque == "" &&
		strings.ToLower(o) == o && u.Scheme+"://"+u.Host == o
}

func httpURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// validEventFilter: "*", an exact type such as "message.created", or a
// prefix such as "group.*" (lower-case letters, digits, "_" and ".").
func validEventFilter(e string) bool {
	if e == "*" {
		return true
	}
	e = strings.TrimSuffix(e, ".*")
	if e == "" || strings.HasPrefix(e, ".") || strings.HasSuffix(e, ".") {
		return false
	}
	for _, r := range e {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
