package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The documented file must say exactly what Default says, so the docs never drift.
func TestDocumentedFileMatchesDefault(t *testing.T) {
	got, err := Load("../../configs/mqim.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("mqim.yaml differs from Default():\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := Load("", []string{
		"MQIM_MQTT_ADDR=127.0.0.1:1999",
		"MQIM_DATA_DIR=/tmp/x",
		"MQIM_MQTT_CONNECT_TIMEOUT=3s",
		"MQIM_MQTT_MAX_PACKET_SIZE=2048",
		"MQIM_MQTT_OPEN_TOPICS=true",
		"MQIM_STORE_MAX_OPEN_CONNS=3",
		"MQIM_HTTP_CORS_ORIGINS=https://app.example.com, http://localhost:3000,",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.Addr != "127.0.0.1:1999" || cfg.DataDir != "/tmp/x" || cfg.MQTT.ConnectTimeout != 3*time.Second ||
		cfg.MQTT.MaxPacketSize != 2048 || !cfg.MQTT.OpenTopics || cfg.Store.MaxOpenConns != 3 ||
		!slices.Equal(cfg.HTTP.CORSOrigins, []string{"https://app.example.com", "http://localhost:3000"}) {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if _, err := Load("", []string{"MQIM_MQTT_CONNECT_TIMEOUT=soon"}); err == nil || !strings.Contains(err.Error(), "MQIM_MQTT_CONNECT_TIMEOUT") {
		t.Fatalf("bad duration: err = %v", err)
	}
}

func TestFileUnknownKeyRefused(t *testing.T) {
	p := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(p, []byte("mqtt:\n  adr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, nil); err == nil {
		t.Fatal("unknown key accepted")
	}
	if err := os.WriteFile(p, []byte(""), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

// Origins must be written as browsers send them, or "*".
func TestCORSOrigins(t *testing.T) {
	for _, o := range []string{"*", "https://app.example.com", "http://localhost:3000", "http://127.0.0.1:8081", "https://[::1]:9000"} {
		c := Default()
		c.HTTP.CORSOrigins = []string{o}
		if err := c.Validate(); err != nil {
			t.Errorf("%q refused: %v", o, err)
		}
	}
	for _, o := range []string{"", "app.example.com", "https://app.example.com/", "https://App.example.com", "ftp://x", "https://a/b",
		"https://u@a", "https://a?x", "https://a#f", "null", "**", "https://"} {
		c := Default()
		c.HTTP.CORSOrigins = []string{o}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "http.cors_origins") {
			t.Errorf("%q: err = %v", o, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"store.driver":         func(c *Config) { c.Store.Driver = "pg" },
		"store.dsn":            func(c *Config) { c.Store.Driver = "mysql" },
		"mqtt.addr":            func(c *Config) { c.MQTT.Addr = "nocolon" },
		"mqtt.connect_timeout": func(c *Config) { c.MQTT.ConnectTimeout = 0 },
		"mqtt.max_packet_size": func(c *Config) { c.MQTT.MaxPacketSize = 10 },
		"auth.jwt_secret":      func(c *Config) { c.Auth.JWTSecret = "short" },
		"log.level":            func(c *Config) { c.Log.Level = "loud" },
		"mqtt.tls_addr":        func(c *Config) { c.MQTT.TLSAddr = ":8883" },
		"chat.max_payload":     func(c *Config) { c.MQTT.MaxPacketSize = 2048 },
		"http.max_body_bytes":  func(c *Config) { c.HTTP.MaxBodyBytes = 1 },
		"chat.direct_policy":   func(c *Config) { c.Chat.DirectPolicy = "friends-only" },
		"chat.max_friends":     func(c *Config) { c.Chat.MaxBlocks = 0 },
	} {
		c := Default()
		mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestWebhookKeys(t *testing.T) {
	cfg, err := Load("", []string{
		`MQIM_WEBHOOKS=[{"url":"https://b.example/h","secret":"0123456789abcdef","events":["group.*"]}]`,
		"MQIM_BEFORE_SEND_URL=http://b.example/bs", "MQIM_BEFORE_SEND_SECRET=0123456789abcdef",
		"MQIM_BEFORE_SEND_FAIL_CLOSED=true", "MQIM_PUSH_VIA=webhook", "MQIM_WEBHOOK_WORKERS=3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Webhooks) != 1 || cfg.Webhooks[0].Events[0] != "group.*" || !cfg.BeforeSend.FailClosed ||
		cfg.Push.Via != PushViaWebhook || cfg.Webhook.Workers != 3 {
		t.Fatalf("%+v %+v %+v", cfg.Webhooks, cfg.BeforeSend, cfg.Webhook)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.Webhooks = []Webhook{{URL: "ftp://x", Secret: "short", Events: []string{"group*", ""}}}
	bad.Push.Via = "apns"
	bad.BeforeSend.Secret = ""
	err = bad.Validate()
	for _, key := range []string{"webhooks[0].url", "webhooks[0].secret", "webhooks[0].events", "push.via", "before_send.secret"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("no error for %s: %v", key, err)
		}
	}
}
