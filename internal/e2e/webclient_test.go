package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// The demo is served with its settings; http.demo off serves nothing.
func TestDemoServed(t *testing.T) {
	srv := testutil.StartServer(t, "sqlite")
	get := func(base, path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for path, want := range map[string]string{
		"/demo/":                   "text/html",
		"/demo/app.js":             "text/javascript",
		"/demo/lib/index.js":       "text/javascript",
		"/demo/vendor/mqtt.esm.js": "text/javascript",
		"/demo/style.css":          "text/css",
	} {
		st, ct, body := get(srv.HTTPURL, path)
		if st != 200 || !strings.HasPrefix(ct, want) || body == "" {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %s", path, st, ct, len(body), want)
		}
	}
	resp, err := http.Get(srv.HTTPURL + "/demo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/demo/" {
		t.Errorf("GET /demo: %d at %s, want the page at /demo/", resp.StatusCode, resp.Request.URL.Path)
	}
	// The page's policy allows its scripts and its import map (by hash), nothing inline else.
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' 'sha256-") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	st, _, body := get(srv.HTTPURL, "/demo/config.json")
	var cfg struct {
		WSPort int    `json:"ws_port"`
		WSPath string `json:"ws_path"`
	}
	if err := json.Unmarshal([]byte(body), &cfg); st != 200 || err != nil {
		t.Fatalf("GET /demo/config.json: %d %s", st, body)
	}
	if _, port, _ := net.SplitHostPort(srv.WSAddr); fmt.Sprint(cfg.WSPort) != port || cfg.WSPath != "/" {
		t.Errorf("config.json %s, want the WebSocket listener's port %s", body, port)
	}
	if st, _, body := get(srv.HTTPURL, "/demo/nothing.js"); st != 404 {
		t.Errorf("GET /demo/nothing.js: %d %s", st, body)
	}

	off := testutil.StartServer(t, "sqlite", func(c *config.Config) { c.HTTP.Demo = false })
	if st, _, body := get(off.HTTPURL, "/demo/"); st != 404 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("http.demo off: GET /demo/: %d %s", st, body)
	}
}

// page is one browser tab of the web client.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// newPage opens the web client in a browser context of its own (its own
// storage, as a second browser window of another person would have).
func newPage(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &page{t: t, name: name, ctx: ctx}
	if err := chromedp.Do(p.timeout(30*time.Second), chromedp.EmulateViewport(1000, 700), chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return p
}

func (p *page) timeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(p.ctx, d)
	p.t.Cleanup(cancel)
	return ctx
}

// eval runs an (async) JavaScript expression in the page and returns its
// value, JSON-encoded.
func (p *page) eval(expr string) string {
	p.t.Helper()
	out, err := chromedp.Run(p.timeout(30*time.Second), chromedp.Evaluate[string](
		fmt.Sprintf(`(async () => JSON.stringify((await (async () => { %s })()) ?? null))()`, expr), chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
	return out
}

// waitFor polls cond (a JavaScript expression) in the page until it is
// true, failing after 20 s with what and the page's error line.
func (p *page) waitFor(cond, what string) {
	p.t.Helper()
	got := p.eval(fmt.Sprintf(`const end = Date.now() + 20000;
		while (Date.now() < end) {
			try { if (%s) return "ok"; } catch (e) {}
			await new Promise((r) => setTimeout(r, 50));
		}
		return "timeout: " + (document.getElementById("chat-error")?.textContent || "") + (document.getElementById("signin-error")?.textContent || "");`, cond))
	if got != `"ok"` {
		p.t.Fatalf("%s: waiting for %s: %s", p.name, what, got)
	}
}

func (p *page) signIn(uid, password string) {
	p.t.Helper()
	p.waitFor(`!document.getElementById("signin").hidden`, "the sign-in form")
	p.eval(fmt.Sprintf(`document.getElementById("signin-user").value = %q;
		document.getElementById("signin-password").value = %q;
		document.getElementById("signin-form").requestSubmit();`, uid, password))
	p.waitFor(`!document.getElementById("chat").hidden && window.mqimDemo.client.connected`, "signed in")
}

// ids answers the ids of the message elements shown, in order.
func (p *page) ids() []string {
	p.t.Helper()
	var ids []string
	out := p.eval(`return [...document.querySelectorAll("#messages .msg[data-id]")].map((e) => e.dataset.id);`)
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, out, err)
	}
	return ids
}

func (p *page) send(text string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`document.getElementById("composer-text").value = %q;
		document.getElementById("composer").requestSubmit();`, text))
	p.waitFor(fmt.Sprintf(`[...document.querySelectorAll("#messages .msg.mine .text")].some((e) => e.textContent === %q)`, text), "own message "+text)
}

func (p *page) screenshot(dir, file string) {
	p.t.Helper()
	png, err := chromedp.Run(p.timeout(30*time.Second), chromedp.FullScreenshot(100) /* 100: PNG */)
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// artifacts is where the test writes what a person may look at:
// $MQIM_TEST_ARTIFACTS, or a new folder under the system's temp dir.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MQIM_TEST_ARTIFACTS")
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "mqim-webclient-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// Two people chat in the web client in a real headless Chromium: the
// message arrives, the unread badge shows, opening the conversation sends
// the read receipt; a page that is disconnected while the other sends
// shows, once reconnected, every message exactly once.
func TestWebClient(t *testing.T) {
	browser := testutil.Browser(t)
	srv := testutil.StartServer(t, "sqlite")
	for _, u := range []string{"alice", "bob"} {
		srv.MustAPI(t, 201, "PUT", "/v1/users/"+u, testutil.ServiceKey, map[string]string{"name": u, "password": u + "-password"}, nil)
	}
	dir := artifacts(t)
	alice := newPage(t, browser, "alice", srv.HTTPURL+"/demo/")
	bob := newPage(t, browser, "bob", srv.HTTPURL+"/demo/")
	alice.signIn("alice", "alice-password")
	bob.signIn("bob", "bob-password")

	// Alice starts a chat with bob and sends.
	alice.eval(`document.getElementById("newchat-user").value = "bob";
		document.getElementById("newchat-form").requestSubmit();`)
	alice.waitFor(`!document.getElementById("composer").hidden`, "the conversation open")
	alice.send("hello bob")
	alice.send("are you there?")

	// Bob sees the conversation with two unread, opens it, reads.
	conv := `document.querySelector('#conversations .conv[data-conv="d:alice:bob"]')`
	bob.waitFor(conv+`?.querySelector(".badge").dataset.unread === "2"`, "the unread badge")
	if got := bob.eval(`return ` + conv + `.querySelector(".preview").textContent;`); got != `"are you there?"` {
		t.Errorf("bob's preview: %s", got)
	}
	bob.screenshot(dir, "1-bob-unread.png")
	bob.eval(conv + `.click();`)
	bob.waitFor(`document.querySelectorAll("#messages .msg").length === 2`, "the history")
	bob.waitFor(conv+`.querySelector(".badge").dataset.unread === "0"`, "the badge cleared")
	alice.waitFor(`[...document.querySelectorAll("#messages .msg.mine .receipt")].every((e) => e.classList.contains("read"))`, "the read receipts")
	bob.send("yes!")
	alice.waitFor(`[...document.querySelectorAll("#messages .msg:not(.mine) .text")].some((e) => e.textContent === "yes!")`, "bob's answer")
	alice.screenshot(dir, "2-alice-receipts.png")

	// Bob is cut off while alice sends; back online, nothing is missing
	// and nothing is there twice.
	bob.eval(`await window.mqimDemo.client.disconnect();`)
	for i := 1; i <= 3; i++ {
		alice.send(fmt.Sprintf("while you were away %d", i))
	}
	bob.eval(`await window.mqimDemo.client.connect();`)
	want := alice.ids()
	if len(want) != 6 {
		t.Fatalf("alice shows %d messages, want 6: %v", len(want), want)
	}
	bob.waitFor(fmt.Sprintf(`document.querySelectorAll("#messages .msg[data-id]").length >= %d`, len(want)), "the missed messages")
	// And once more with the socket broken under it (no goodbye): the
	// library reconnects by itself.
	bob.eval(`window.mqimDemo.client.dropConnection();`)
	alice.send("after the drop")
	want = alice.ids()
	bob.waitFor(fmt.Sprintf(`window.mqimDemo.client.connected && document.querySelectorAll("#messages .msg[data-id]").length >= %d`, len(want)), "the message after the drop")
	got := bob.ids()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("bob shows %v, alice %v: want the same messages, in order, once each", got, want)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("message %s shown twice", id)
		}
		seen[id] = true
	}
	bob.waitFor(conv+`.querySelector(".badge").dataset.unread === "0"`, "nothing unread in the open conversation")
	var unread struct {
		Total int `json:"total"`
	}
	srv.MustAPI(t, 200, "GET", "/v1/unread?user_id=bob", testutil.ServiceKey, nil, &unread)
	if unread.Total != 0 {
		t.Errorf("bob's unread on the server: %d, want 0 (the open conversation was read)", unread.Total)
	}
	alice.screenshot(dir, "3-alice.png")
	bob.screenshot(dir, "3-bob-after-reconnect.png")

	// Typing, an image by URL, edit and recall of one's own message.
	alice.eval(`const i = document.getElementById("composer-text"); i.value = "t"; i.dispatchEvent(new Event("input"));`)
	bob.waitFor(`document.getElementById("typing").textContent.includes("alice is typing")`, "the typing notice")
	alice.eval(`window.prompt = () => "https://example.com/cat.png"; document.getElementById("composer-image").click();`)
	bob.waitFor(`document.querySelector('#messages .msg img[src="https://example.com/cat.png"]') !== null`, "the image")
	last := fmt.Sprintf(`document.querySelector('#messages .msg[data-id=%q]')`, want[len(want)-1])
	alice.eval(`window.prompt = () => "after the drop (edited text)"; ` + last + `.querySelector(".actions button").click();`)
	bob.waitFor(last+`.querySelector(".text").textContent === "after the drop (edited text)" && `+last+`.textContent.includes("(edited)")`, "the edit")
	first := fmt.Sprintf(`document.querySelector('#messages .msg[data-id=%q]')`, want[0])
	alice.eval(first + `.querySelector(".actions button:last-child").click();`)
	bob.waitFor(first+`.classList.contains("recalled")`, "the recall")
	// The records count like messages; the open conversation reads them.
	bob.waitFor(conv+`.querySelector(".badge").dataset.unread === "0" && window.mqimDemo.client.totalUnread() === 0`, "nothing unread after the edit and the recall")

	// A group with bob: it shows in bob's list, and a message reaches him.
	alice.eval(`document.getElementById("newgroup-name").value = "Team";
		document.getElementById("newgroup-members").value = "bob";
		document.getElementById("newgroup-form").requestSubmit();`)
	alice.waitFor(`document.getElementById("conv-title").textContent.startsWith("# ") && !document.getElementById("addmember-form").hidden`, "the group open")
	alice.send("hello team")
	bob.waitFor(`[...document.querySelectorAll("#conversations .conv")].some((e) => e.dataset.conv.startsWith("g:") && e.querySelector(".badge").dataset.unread === "1" && e.textContent.includes("hello team"))`, "the group in bob's list, one unread")
	alice.screenshot(dir, "4-alice-group.png")
	bob.screenshot(dir, "4-bob-group.png")

	// A long history: the newest page first, older pages when scrolling up.
	carol := srv.User(t, "carol")
	for i := 1; i <= 45; i++ {
		srv.MustAPI(t, 201, "POST", "/v1/messages", carol, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": fmt.Sprint("old ", i)}}, nil)
	}
	long := `document.querySelector('#conversations .conv[data-conv="d:bob:carol"]')`
	bob.waitFor(long+`?.querySelector(".badge").dataset.unread === "45"`, "carol's 45 messages unread")
	bob.eval(long + `.click();`)
	bob.waitFor(`document.querySelectorAll("#messages .msg").length === 30`, "the newest page")
	bob.eval(`document.getElementById("messages").scrollTop = 0;`)
	bob.waitFor(`document.querySelectorAll("#messages .msg").length === 45`, "the older page")
	if got := bob.eval(`return [...document.querySelectorAll("#messages .msg")].map((e) => Number(e.dataset.seq)).every((s, i, a) => i === 0 || a[i-1] < s);`); got != "true" {
		t.Errorf("the history is not in seq order")
	}
}

// A token renewed while the page signs in is the one the tab keeps: a
// reload must not come back with the token it was renewed from.
func TestWebClientKeepsRenewedToken(t *testing.T) {
	browser := testutil.Browser(t)
	srv := testutil.StartServer(t, "sqlite")
	srv.MustAPI(t, 201, "PUT", "/v1/users/alice", testutil.ServiceKey, map[string]string{"name": "alice", "password": "alice-password"}, nil)
	alice := newPage(t, browser, "alice", srv.HTTPURL+"/demo/")
	alice.waitFor(`!document.getElementById("signin").hidden`, "the sign-in form")
	// A renewal that lands during connect, as one does when the saved token
	// is near its exp at a reload.
	alice.eval(`const lib = await import("./lib/index.js");
		const connect = lib.MqimClient.prototype.connect;
		lib.MqimClient.prototype.connect = async function () { await connect.call(this); await this.refreshToken(); };`)
	alice.signIn("alice", "alice-password")
	if got := alice.eval(`return JSON.parse(sessionStorage.getItem("mqim.demo")).token === window.mqimDemo.client.token;`); got != "true" {
		t.Errorf("the tab keeps a token other than the client's current one")
	}
}

// ?ws= names only a WebSocket on the page's own host: a link to the demo
// with another host in it must not send the user's token there.
func TestWebClientWSOverrideStaysOnHost(t *testing.T) {
	browser := testutil.Browser(t)
	srv := testutil.StartServer(t, "sqlite")
	srv.MustAPI(t, 201, "PUT", "/v1/users/alice", testutil.ServiceKey, map[string]string{"name": "alice", "password": "alice-password"}, nil)
	evil, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	reached := make(chan struct{}, 1)
	go func() {
		for {
			c, err := evil.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case reached <- struct{}{}:
			default:
			}
		}
	}()
	// The page is on 127.0.0.1; "localhost" is another host to the page.
	_, port, _ := net.SplitHostPort(evil.Addr().String())
	alice := newPage(t, browser, "alice", srv.HTTPURL+"/demo/?ws=ws://localhost:"+port+"/")
	alice.waitFor(`!document.getElementById("signin").hidden`, "the sign-in form")
	alice.eval(`document.getElementById("signin-user").value = "alice";
		document.getElementById("signin-password").value = "alice-password";
		document.getElementById("signin-form").requestSubmit();`)
	alice.waitFor(`document.getElementById("signin-error").textContent !== ""`, "the sign-in refused")
	select {
	case <-reached:
		t.Errorf("the page connected to the ?ws= host that is not its own (and sent the token there)")
	default:
	}
}
