package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// TestMain lets the test binary double as the server: with MQIM_E2E_SERVE
// set it runs `mqim serve` with the arguments in MQIM_E2E_ARGS, so crash
// tests can start, SIGKILL and restart a real separate process.
func TestMain(m *testing.M) {
	if os.Getenv("MQIM_E2E_SERVE") != "" {
		args := strings.Fields(os.Getenv("MQIM_E2E_ARGS"))
		os.Exit(app.Main(args, os.Stdout, os.Stderr, os.Environ()))
	}
	os.Exit(m.Run())
}

// process is mqim running as a child process.
type process struct {
	cmd *exec.Cmd
	srv *testutil.Server // addresses and HTTP helpers only (no in-process app)
}

// startProcess runs mqim serve as a child process with cfg's data dir,
// store and JWT secret, plus env (MQIM_* settings), and waits until it is
// ready.
func startProcess(t *testing.T, cfg config.Config, httpPort, mqttPort int, env ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"MQIM_E2E_SERVE=1",
		fmt.Sprintf("MQIM_E2E_ARGS=serve --data %s --http 127.0.0.1:%d --mqtt 127.0.0.1:%d --ws 127.0.0.1:%d",
			cfg.DataDir, httpPort, mqttPort, testutil.FreePort(t)),
		"MQIM_STORE_DRIVER="+cfg.Store.Driver,
		"MQIM_STORE_DSN="+cfg.Store.DSN,
		"MQIM_AUTH_SERVICE_KEY="+testutil.ServiceKey,
		"MQIM_AUTH_JWT_SECRET="+cfg.Auth.JWTSecret,
		"MQIM_LOG_LEVEL=error",
	)
	cmd.Env = append(cmd.Env, env...)
	if os.Getenv("MQIM_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, srv: &testutil.Server{
		HTTPURL:  "http://127.0.0.1:" + strconv.Itoa(httpPort),
		MQTTAddr: "127.0.0.1:" + strconv.Itoa(mqttPort),
	}}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p.srv.WaitReady(t, 30*time.Second)
	return p
}

// Every message a sender saw a PUBACK for survives a SIGKILL of the server,
// and is stored exactly once after the clients resend what was unacked.
func TestAckedMessagesSurviveSIGKILL(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		cfg := testutil.TestConfig(t, backend)
		httpPort, mqttPort := testutil.FreePort(t), testutil.FreePort(t)
		p := startProcess(t, cfg, httpPort, mqttPort)
		const senders = 4
		toks := map[string]string{"sink": p.srv.User(t, "sink")}
		for i := 0; i < senders; i++ {
			uid := fmt.Sprintf("s%d", i)
			toks[uid] = p.srv.User(t, uid)
		}
		p.srv.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey, map[string]any{"id": "crash", "name": "Crash", "owner": "sink", "members": []string{"s0", "s1", "s2", "s3"}}, nil)

		var acked sync.Map // cid -> conv
		var total atomic.Int64
		killAt := int64(400)
		var wg sync.WaitGroup
		for i := 0; i < senders; i++ {
			uid := fmt.Sprintf("s%d", i)
			cl := p.srv.Connect(t, uid, "d", toks[uid])
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					cid := fmt.Sprintf("%s-%d", uid, j)
					topic, conv := "im/u/sink", chat.DirectConv("sink", uid)
					if j%3 == 0 {
						topic, conv = "im/g/crash", "g:crash"
					}
					if err := cl.Publish(topic, 1, `{"cid":"`+cid+`","type":"text","body":{"text":"x"}}`); err != nil {
						return // the server died under us
					}
					acked.Store(cid, conv)
					total.Add(1)
				}
			}()
		}
		testutil.Eventually(t, 60*time.Second, func() error {
			if n := total.Load(); n < killAt {
				return fmt.Errorf("%d acked", n)
			}
			return nil
		})
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		_ = p.cmd.Wait()

		p2 := startProcess(t, cfg, httpPort, mqttPort)
		stored := map[string]int{}
		for _, conv := range []string{"g:crash", "d:s0:sink", "d:s1:sink", "d:s2:sink", "d:s3:sink"} {
			prev := int64(0)
			for _, m := range history(t, p2.srv, toks["sink"], conv, 0) {
				if m.Seq != prev+1 {
					t.Fatalf("%s: seq %d after %d", conv, m.Seq, prev)
				}
				prev = m.Seq
				if m.CID != "" {
					stored[m.CID]++
				}
			}
		}
		n := 0
		acked.Range(func(k, v any) bool {
			n++
			if stored[k.(string)] != 1 {
				t.Errorf("acked %s stored %d times", k, stored[k.(string)])
			}
			return true
		})
		for cid, c := range stored {
			if c != 1 {
				t.Errorf("%s stored %d times", cid, c)
			}
		}
		t.Logf("%s: %d acked before SIGKILL, %d stored", backend, n, len(stored))
	})
}
