package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/testutil"
)

// jsClientDir is clients/js of the repository.
func jsClientDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "clients", "js")
}

// needNode returns the node binary, or skips the test (fails it when
// MQIM_TEST_NODE=1, as scripts/test-node.sh sets) when node or the
// library's node_modules (npm ci in clients/js) is missing.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "no node on PATH"
	default:
		if _, err := os.Stat(filepath.Join(jsClientDir(t), "node_modules", "mqtt")); err != nil {
			missing = "no clients/js/node_modules (run npm ci in clients/js)"
		}
	}
	if missing != "" {
		if os.Getenv("MQIM_TEST_NODE") == "1" {
			t.Fatal(missing)
		}
		t.Skip(missing + "; scripts/test-node.sh installs both, make test runs it")
	}
	return node
}

// The JavaScript client library's own tests (clients/js/test, Node's test
// runner) against a real server: send and echo, dedupe, gap detection and
// catch-up after a forced disconnect, token refresh, mapped errors.
func TestJSClient(t *testing.T) {
	node := needNode(t)
	srv := testutil.StartServer(t, "sqlite")
	dir := jsClientDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"--test", "--test-reporter=spec"}
	if p := os.Getenv("MQIM_TEST_JS_PATTERN"); p != "" { // run only the tests whose name matches
		args = append(args, "--test-name-pattern="+p)
	}
	cmd := exec.CommandContext(ctx, node, append(args, "test/")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"MQIM_HTTP_URL="+srv.HTTPURL,
		"MQIM_WS_URL=ws://"+srv.WSAddr+"/",
		"MQIM_SERVICE_KEY="+testutil.ServiceKey,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test clients/js/test/:\n%s", out)
	if err != nil {
		t.Fatalf("the client library's tests failed: %v", err)
	}
}
