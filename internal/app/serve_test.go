package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/testutil"
)

// syncBuffer is a bytes.Buffer that a running Main writes to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is `mqim serve` running in a goroutine.
type served struct {
	out, errb *syncBuffer
	httpURL   string
	key       string // the service key it printed, if any
}

var (
	listeningRe = regexp.MustCompile(`listening: http=(\S+) `)
	keyRe       = regexp.MustCompile(`service key \(shown once, only its hash is kept\): (sk_[0-9a-f]+)\n`)
)

// serve runs `mqim serve` on loopback with data as its data folder and
// mqttAddr as its MQTT address, waits until it prints its listening line,
// and stops it (expecting exit code 0) when the test ends.
func serve(t *testing.T, data, mqttAddr string, env []string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{out: &syncBuffer{}, errb: &syncBuffer{}}
	done := make(chan int, 1)
	go func() {
		done <- app.MainContext(ctx, []string{"serve", "--data", data, "--http", "127.0.0.1:0", "--mqtt", mqttAddr, "--ws", "127.0.0.1:0"},
			s.out, s.errb, env)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exit %d after cancel: %s", code, s.errb.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s")
		}
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, s.errb.String())
		default:
		}
		m := listeningRe.FindStringSubmatch(s.out.String())
		if m == nil {
			return fmt.Errorf("no listening line yet: %q", s.out.String())
		}
		s.httpURL = "http://" + m[1]
		return nil
	})
	if m := keyRe.FindStringSubmatch(s.out.String()); m != nil {
		s.key = m[1]
	}
	return s
}

// createUser tries to create a user with key as the bearer and returns the
// status.
func createUser(t *testing.T, baseURL, key, uid string) int {
	t.Helper()
	req, err := http.NewRequest("PUT", baseURL+"/v1/users/"+uid, strings.NewReader(`{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func storeEnv(t *testing.T, backend string) []string {
	drv, dsn := testutil.FreshDSN(t, backend)
	return []string{"MQIM_STORE_DRIVER=" + drv, "MQIM_STORE_DSN=" + dsn, "MQIM_LOG_LEVEL=error"}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s: mode %o, want %o", path, fi.Mode().Perm(), want)
	}
}

// A first start that fails (here: the MQTT port is taken) writes no secret,
// so the next start generates and prints a service key, and that key works.
func TestFailedFirstStartKeepsNoSecrets(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		env := storeEnv(t, backend)
		data := filepath.Join(t.TempDir(), "data")
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mqttAddr := taken.Addr().String()

		var out, errb bytes.Buffer
		code := app.MainContext(context.Background(), []string{"serve", "--data", data, "--http", "127.0.0.1:0", "--mqtt", mqttAddr, "--ws", "127.0.0.1:0"},
			&out, &errb, env)
		if code != 1 || !strings.Contains(errb.String(), "address already in use") {
			t.Fatalf("start on a taken port: exit %d, stderr %q", code, errb.String())
		}
		if strings.Contains(out.String(), "service key") {
			t.Fatalf("a failed start printed a key: %q", out.String())
		}
		for _, f := range []string{"service.key.hash", "jwt.secret"} {
			if _, err := os.Stat(filepath.Join(data, f)); !os.IsNotExist(err) {
				t.Fatalf("%s after a failed start: %v", f, err)
			}
		}
		taken.Close()

		s := serve(t, data, mqttAddr, env)
		if s.key == "" {
			t.Fatalf("second start printed no service key: %q", s.out.String())
		}
		if st := createUser(t, s.httpURL, s.key, "alice"); st != 200 && st != 201 {
			t.Fatalf("PUT user with the printed key: %d", st)
		}
		if st := createUser(t, s.httpURL, s.key+"0", "bob"); st != 401 {
			t.Fatalf("PUT user with a wrong key: %d, want 401", st)
		}
		assertMode(t, filepath.Join(data, "service.key.hash"), 0o600)
		assertMode(t, filepath.Join(data, "jwt.secret"), 0o600)
		assertMode(t, data, 0o700)
	})
}

// A start with the secrets in place prints no key and accepts the one
// printed before; `mqim service-key` replaces it (the old one stops working
// at the next start).
func TestServiceKeyRotation(t *testing.T) {
	env := storeEnv(t, "sqlite")
	data := t.TempDir()
	first := func() string {
		s := serve(t, data, "127.0.0.1:0", env)
		return s.key
	}()
	if first == "" {
		t.Fatal("first start printed no key")
	}
	jwtBefore, err := os.ReadFile(filepath.Join(data, "jwt.secret"))
	if err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := app.MainContext(context.Background(), []string{"service-key", "--data", data}, &out, &errb, env); code != 0 {
		t.Fatalf("service-key: exit %d: %s", code, errb.String())
	}
	m := keyRe.FindStringSubmatch(out.String())
	if m == nil || m[1] == first {
		t.Fatalf("service-key printed %q (first key %s)", out.String(), first)
	}
	rotated := m[1]
	assertMode(t, filepath.Join(data, "service.key.hash"), 0o600)
	if left, _ := filepath.Glob(filepath.Join(data, "*.tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	s := serve(t, data, "127.0.0.1:0", env)
	if s.key != "" {
		t.Fatalf("a start with a stored hash printed a key: %q", s.out.String())
	}
	if st := createUser(t, s.httpURL, rotated, "alice"); st != 200 && st != 201 {
		t.Fatalf("the rotated key: %d", st)
	}
	if st := createUser(t, s.httpURL, first, "bob"); st != 401 {
		t.Fatalf("the replaced key: %d, want 401", st)
	}
	if jwtAfter, _ := os.ReadFile(filepath.Join(data, "jwt.secret")); !bytes.Equal(jwtBefore, jwtAfter) {
		t.Fatal("jwt.secret changed")
	}
}

// With auth.service_key configured, service-key refuses and changes nothing.
func TestServiceKeyRefusedWhenConfigured(t *testing.T) {
	data := t.TempDir()
	hash := filepath.Join(data, "service.key.hash")
	if err := os.WriteFile(hash, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	env := []string{"MQIM_AUTH_SERVICE_KEY=configured-key-0123456789"}
	if code := app.MainContext(context.Background(), []string{"service-key", "--data", data}, &out, &errb, env); code != 1 ||
		!strings.Contains(errb.String(), "auth.service_key") || out.Len() != 0 {
		t.Fatalf("service-key with a configured key: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if b, _ := os.ReadFile(hash); string(b) != "old\n" {
		t.Fatalf("service.key.hash changed to %q", b)
	}
	cfgFile := filepath.Join(t.TempDir(), "mqim.yaml")
	if err := os.WriteFile(cfgFile, []byte("auth:\n  service_key: configured-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := app.MainContext(context.Background(), []string{"service-key", "--config", cfgFile, "--data", data}, &out, &errb, nil); code != 1 ||
		!strings.Contains(errb.String(), "auth.service_key") {
		t.Fatalf("service-key with a configured key in the file: exit %d, stderr %q", code, errb.String())
	}
}
