package gorush_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/push"
	"github.com/mqim/mqim/push/gorush"
	"github.com/mqim/mqim/push/gorush/gorushtest"
	"github.com/mqim/mqim/store"
)

func newClient(t *testing.T, s *gorushtest.Server, timeout time.Duration) (*gorush.Client, *testutil.LogBuffer) {
	t.Helper()
	lb := &testutil.LogBuffer{}
	c := gorush.New(s.URL+"/", timeout, nil, slog.New(slog.NewTextHandler(lb, nil)))
	t.Cleanup(c.CloseIdleConnections)
	return c, lb
}

func sendErr(t *testing.T, err error) *push.SendError {
	t.Helper()
	var se *push.SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *push.SendError", err, err)
	}
	return se
}

func TestMappingAsReceived(t *testing.T) {
	s := gorushtest.Start(t)
	s.EnablePlatforms(gorushtest.IOS, gorushtest.Android, gorushtest.Huawei)
	c, _ := newClient(t, s, 5*time.Second)
	data := map[string]any{"conv": "c42", "id": "m1", "seq": float64(7)}
	batch := []push.Notification{
		{UserID: "u1", Platform: store.PlatformIOS, Tokens: []string{"apns-1", "apns-2"}, Topic: "com.example.im",
			Title: "Alice", Body: "hi there", Badge: 0, ThreadID: "c42", Data: data},
		{UserID: "u1", Platform: store.PlatformAndroid, Tokens: []string{"fcm-1"},
			Title: "Group", Body: "[image]", Badge: 3, ThreadID: "c42", Data: data},
		{UserID: "u2", Platform: store.PlatformHuawei, Tokens: []string{"hms-1"},
			Title: "Bob", Body: "yo", Badge: 1, ThreadID: "c43", Data: data},
	}
	res, err := c.Send(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dead) != 0 || res.Failed != 0 {
		t.Fatalf("result %+v, want empty", res)
	}
	got := s.Received()
	if len(got) != 3 {
		t.Fatalf("received %d notifications, want 3: %+v", len(got), got)
	}
	ids := map[string]bool{}
	for i := range got {
		if got[i].ID == "" || ids[got[i].ID] {
			t.Fatalf("notif_id %q missing or repeated", got[i].ID)
		}
		ids[got[i].ID] = true
		got[i].ID = ""
	}
	zero := 0
	want := []gorushtest.Received{
		{Platform: 1, Tokens: []string{"apns-1", "apns-2"}, Topic: "com.example.im", Title: "Alice", Message: "hi there",
			Sound: "default", Badge: &zero, Data: data, ThreadID: "c42", CollapseID: "c42"},
		{Platform: 2, Tokens: []string{"fcm-1"}, Title: "Group", Message: "[image]", Priority: "high", Data: data,
			HasAndroid: true, CollapseKey: "c42", AndroidPriority: "high"},
		{Platform: 3, Tokens: []string{"hms-1"}, Title: "Bob", Message: "yo", Data: data},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("received\n%#v\nwant\n%#v", got, want)
	}
	if got[0].Badge == nil || *got[0].Badge != 0 {
		t.Fatal("badge 0 must be sent explicitly for iOS")
	}
	// counts: 2 iOS tokens + topic + 1 Android + 1 Huawei.
	if s.Counts() != 5 {
		t.Fatalf("counts %d, want 5", s.Counts())
	}
}

func TestNotifIDsUniqueAcrossSends(t *testing.T) {
	s := gorushtest.Start(t)
	c, _ := newClient(t, s, 5*time.Second)
	for range 20 {
		if _, err := c.Send(context.Background(), []push.Notification{
			{Platform: store.PlatformAndroid, Tokens: []string{"a"}}, {Platform: store.PlatformAndroid, Tokens: []string{"b"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, r := range s.Received() {
		if seen[r.ID] {
			t.Fatalf("notif_id %s repeated", r.ID)
		}
		seen[r.ID] = true
	}
	if len(seen) != 40 {
		t.Fatalf("%d ids, want 40", len(seen))
	}
}

func TestLongThreadIDNotSentAsAPNsCollapseID(t *testing.T) {
	s := gorushtest.Start(t)
	c, _ := newClient(t, s, 5*time.Second)
	long := strings.Repeat("x", 65)
	if _, err := c.Send(context.Background(), []push.Notification{{Platform: store.PlatformIOS, Tokens: []string{"t"}, ThreadID: long}}); err != nil {
		t.Fatal(err)
	}
	r := s.Received()[0]
	if r.CollapseID != "" || r.ThreadID != long {
		t.Fatalf("collapse_id %q thread-id %q", r.CollapseID, r.ThreadID)
	}
}

func TestSkippedNotifications(t *testing.T) {
	s := gorushtest.Start(t)
	c, _ := newClient(t, s, 5*time.Second)
	res, err := c.Send(context.Background(), []push.Notification{
		{Platform: "windows", Tokens: []string{"w1", "w2"}},
		{Platform: store.PlatformAndroid, Tokens: []string{""}},
		{Platform: store.PlatformIOS},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 2 || len(res.Dead) != 0 {
		t.Fatalf("result %+v, want 2 failed (unknown platform)", res)
	}
	if s.Requests() != 0 {
		t.Fatalf("%d requests for nothing to send", s.Requests())
	}
}

func TestDisabledPlatformSilentlyDropped(t *testing.T) {
	s := gorushtest.Start(t) // Huawei not enabled, as gorush by default
	c, logs := newClient(t, s, 5*time.Second)
	for range 2 {
		res, err := c.Send(context.Background(), []push.Notification{{Platform: store.PlatformHuawei, Tokens: []string{"hms-secret-token"}, Title: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		// The client cannot know: gorush answers 200 with counts 0.
		if res.Failed != 0 || len(res.Dead) != 0 {
			t.Fatalf("result %+v", res)
		}
	}
	if s.Requests() != 2 || s.Counts() != 0 || len(s.Received()) != 0 || s.Dropped() != 2 {
		t.Fatalf("requests %d counts %d received %d dropped %d", s.Requests(), s.Counts(), len(s.Received()), s.Dropped())
	}
	out := logs.String()
	if strings.Count(out, "counted fewer tokens") != 1 {
		t.Fatalf("want one warning about uncounted tokens, got:\n%s", out)
	}
	if strings.Contains(out, "hms-secret-token") {
		t.Fatal("token logged")
	}
}

func TestStatusMapping(t *testing.T) {
	one := []push.Notification{{Platform: store.PlatformAndroid, Tokens: []string{"tok-secret"}}}
	two := []push.Notification{{Platform: store.PlatformAndroid, Tokens: []string{"a"}}, {Platform: store.PlatformIOS, Tokens: []string{"b"}}}

	t.Run("over limit 400", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.SetMaxNotification(1)
		c, _ := newClient(t, s, 5*time.Second)
		_, err := c.Send(context.Background(), two)
		se := sendErr(t, err)
		if se.Status != 400 || se.Retry || se.Partial || !strings.Contains(se.Error(), "Number of notifications(2) over limit(1)") {
			t.Fatalf("%+v %v", se, se)
		}
		if len(s.Received()) != 0 {
			t.Fatal("400 must accept nothing")
		}
	})
	t.Run("other 4xx", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.FailNext(1, 404, `{"code":404,"message":"404 page not found"}`)
		c, _ := newClient(t, s, 5*time.Second)
		se := sendErr(t, second(c.Send(context.Background(), one)))
		if se.Status != 404 || se.Retry || se.Partial {
			t.Fatalf("%+v", se)
		}
	})
	t.Run("empty 500 is partial", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.QueueFullNext(1, 1)
		c, _ := newClient(t, s, 5*time.Second)
		se := sendErr(t, second(c.Send(context.Background(), two)))
		if se.Status != 500 || !se.Retry || !se.Partial {
			t.Fatalf("%+v", se)
		}
		if len(s.Received()) != 1 {
			t.Fatalf("fake should have queued the first notification, got %d", len(s.Received()))
		}
	})
	t.Run("500 with body is not partial", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.FailNext(1, 500, `{"code":500,"message":"boom"}`)
		c, _ := newClient(t, s, 5*time.Second)
		se := sendErr(t, second(c.Send(context.Background(), two)))
		if se.Status != 500 || !se.Retry || se.Partial || !strings.Contains(se.Error(), "boom") {
			t.Fatalf("%+v %v", se, se)
		}
	})
	for _, code := range []int{502, 503, 504} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			s := gorushtest.Start(t)
			s.FailNext(1, code, "")
			c, _ := newClient(t, s, 5*time.Second)
			se := sendErr(t, second(c.Send(context.Background(), two)))
			if se.Status != code || !se.Retry || se.Partial {
				t.Fatalf("%+v", se)
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.Down()
		c, _ := newClient(t, s, 5*time.Second)
		se := sendErr(t, second(c.Send(context.Background(), one)))
		if se.Status != 0 || !se.Retry || se.Partial {
			t.Fatalf("%+v", se)
		}
		if strings.Contains(se.Error(), "tok-secret") {
			t.Fatal("token in error")
		}
		s.Up()
		if _, err := c.Send(context.Background(), one); err != nil {
			t.Fatalf("after Up: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.SetDelay(time.Minute)
		c, _ := newClient(t, s, 50*time.Millisecond)
		start := time.Now()
		se := sendErr(t, second(c.Send(context.Background(), one)))
		if se.Status != 0 || !se.Retry || se.Partial {
			t.Fatalf("%+v", se)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("timeout took %v", el)
		}
	})
	t.Run("ctx cancelled", func(t *testing.T) {
		s := gorushtest.Start(t)
		s.SetDelay(time.Minute)
		c, _ := newClient(t, s, time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for s.Requests() == 0 {
				<-tick.C
			}
			cancel()
		}()
		se := sendErr(t, second(c.Send(ctx, one)))
		if se.Status != 0 || !errors.Is(se, context.Canceled) {
			t.Fatalf("%+v %v", se, se)
		}
	})
}

func second(_ push.Result, err error) error { return err }

func TestFailureLogs(t *testing.T) {
	s := gorushtest.Start(t)
	c, logs := newClient(t, s, 5*time.Second)
	failing := map[string]string{
		"ios-unreg":    "Unregistered",
		"ios-bad":      "BadDeviceToken",
		"ios-topic":    "DeviceTokenNotForTopic",
		"ios-expired":  "ExpiredToken",
		"ios-dns":      `Post "https://api.push.apple.com/3/device/ios-dns": dial tcp: lookup api.push.apple.com: no such host`,
		"ios-timeout":  `Post "https://api.push.apple.com/3/device/ios-timeout": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
		"ios-badtopic": "BadTopic",
		"ios-near":     "unregistered", // not exact: not permanent
		"and-gone":     "Requested entity was not found.",
		"and-auth":     `unknown error while making an http call: Post "https://fcm.googleapis.com/v1/projects/p/messages:send": auth: cannot fetch token: dial tcp: lookup oauth2.googleapis.com: no such host`,
		"and-invalid":  "The registration token is not a valid FCM registration token",
	}
	for tok, e := range failing {
		s.FailToken(tok, e)
	}
	s.SetAndroidMaxRetry(2) // gorush repeats Android failures per retry
	res, err := c.Send(context.Background(), []push.Notification{
		{Platform: store.PlatformIOS, Topic: "com.x", Tokens: []string{"ios-ok", "ios-unreg", "ios-bad", "ios-topic", "ios-expired", "ios-dns", "ios-timeout", "ios-badtopic", "ios-near"}},
		{Platform: store.PlatformAndroid, Tokens: []string{"and-ok", "and-gone", "and-auth", "and-invalid"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var dead []string
	for _, d := range res.Dead {
		dead = append(dead, d.Platform+"/"+d.Token+"/"+d.Reason)
	}
	sort.Strings(dead)
	want := []string{
		"android/and-gone/Requested entity was not found.",
		"ios/ios-bad/BadDeviceToken",
		"ios/ios-expired/ExpiredToken",
		"ios/ios-topic/DeviceTokenNotForTopic",
		"ios/ios-unreg/Unregistered",
	}
	if !reflect.DeepEqual(dead, want) {
		t.Fatalf("dead %v, want %v", dead, want)
	}
	// ios-dns, ios-timeout, ios-badtopic, ios-near, and-auth, and-invalid.
	if res.Failed != 6 {
		t.Fatalf("failed %d, want 6", res.Failed)
	}
	for tok := range failing {
		if strings.Contains(logs.String(), tok) {
			t.Fatalf("token %s logged", tok)
		}
	}
}

func TestWholeNotificationFailureNotDead(t *testing.T) {
	s := gorushtest.Start(t)
	s.FailPlatform(gorushtest.Android, "fcm service send message error: Requested entity was not found.")
	c, _ := newClient(t, s, 5*time.Second)
	res, err := c.Send(context.Background(), []push.Notification{{Platform: store.PlatformAndroid, Tokens: []string{"a", "b", "c"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dead) != 0 || res.Failed != 3 {
		t.Fatalf("result %+v, want 3 failed, none dead", res)
	}
}

func TestHiddenTokensNeverPruned(t *testing.T) {
	s := gorushtest.Start(t)
	s.HideTokens(true) // gorush's default log.hide_token
	s.FailToken("ios-unreg-aaaaaaaaaaaaaaaa", "Unregistered")
	c, logs := newClient(t, s, 5*time.Second)
	for range 2 {
		res, err := c.Send(context.Background(), []push.Notification{{Platform: store.PlatformIOS, Tokens: []string{"ios-unreg-aaaaaaaaaaaaaaaa", "ok"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Dead) != 0 || res.Failed != 1 {
			t.Fatalf("result %+v, want 1 failed, none dead", res)
		}
	}
	if strings.Count(logs.String(), "hide_token") != 1 {
		t.Fatalf("want one hide_token warning:\n%s", logs.String())
	}
}

func TestAsyncModeReportsNothing(t *testing.T) {
	s := gorushtest.Start(t)
	s.SetSync(false)
	s.FailToken("dead", "Unregistered")
	c, _ := newClient(t, s, 5*time.Second)
	res, err := c.Send(context.Background(), []push.Notification{{Platform: store.PlatformIOS, Tokens: []string{"dead"}}})
	if err != nil || len(res.Dead) != 0 || res.Failed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestFakeValidatesLikeGorush checks the fake's own replies against what
// gorush was observed to answer.
func TestFakeValidatesLikeGorush(t *testing.T) {
	s := gorushtest.Start(t)
	s.SetMaxNotification(3)
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(s.URL+"/api/push", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("body %q: %v", raw, err)
		}
		return resp.StatusCode, m
	}
	for _, tc := range []struct {
		body string
		code int
		msg  string
	}{
		{``, 400, gorushtest.MsgMissing},
		{`not json`, 400, gorushtest.MsgMissing},
		{`{}`, 400, gorushtest.MsgMissing},
		{`{"notifications":null}`, 400, gorushtest.MsgMissing},
		{`{"notifications":[{"platform":"ios","tokens":["a"]}]}`, 400, gorushtest.MsgMissing},
		{`{"notifications":[]}`, 400, gorushtest.MsgEmpty},
		{`{"notifications":[{},{},{},{}]}`, 400, "Number of notifications(4) over limit(3)"},
	} {
		code, m := post(tc.body)
		if code != tc.code || m["message"] != tc.msg || m["code"] != float64(tc.code) {
			t.Errorf("%s: %d %v, want %d %q", tc.body, code, m, tc.code, tc.msg)
		}
	}
	// Observed: 2 iOS tokens with a topic + 1 Android token = counts 4;
	// Huawei (disabled) and unknown platforms vanish; no tokens counts 0.
	code, m := post(`{"notifications":[
		{"platform":1,"tokens":["a","b"],"topic":"com.x"},
		{"platform":2,"tokens":["c"]},
		{"platform":3,"tokens":["d"]}]}`)
	if code != 200 || m["counts"] != float64(4) || m["success"] != "ok" || len(m["logs"].([]any)) != 0 {
		t.Fatalf("%d %v", code, m)
	}
	code, m = post(`{"notifications":[{"platform":9,"tokens":["x"]},{"platform":2}]}`)
	if code != 200 || m["counts"] != float64(0) {
		t.Fatalf("%d %v", code, m)
	}
	if s.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2", s.Dropped())
	}
	s.FailToken("c", "Requested entity was not found.")
	_, m = post(`{"notifications":[{"platform":2,"tokens":["c","e"],"notif_id":"n1"}]}`)
	logs := m["logs"].([]any)
	if len(logs) != 1 {
		t.Fatalf("logs %v", logs)
	}
	e := logs[0].(map[string]any)
	if e["notif_id"] != "n1" || e["type"] != "failed-push" || e["platform"] != "android" || e["token"] != "c" || e["error"] != "Requested entity was not found." {
		t.Fatalf("log entry %v", e)
	}
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}
