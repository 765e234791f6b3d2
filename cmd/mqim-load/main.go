// Command mqim-load drives a running mqim server over its real interfaces:
// it creates users through the HTTP API, connects them as MQTT 3.1.1 devices
// (paho), and has N senders publish M QoS 1 messages each, either 1:1 (each
// sender to its own peer) or into one group. It reports the send rate
// (PUBACKed messages per second), deliveries per second, and the
// publish-to-delivery latency seen by receivers. Its loops are bounded by
// count and by -timeout; point it only at your own server (default loopback).
//
//	go run ./cmd/mqim-load -key "$SERVICE_KEY" -senders 16 -msgs 500
//	go run ./cmd/mqim-load -key "$SERVICE_KEY" -senders 16 -msgs 100 -group 50
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	httpURL := flag.String("http", "http://127.0.0.1:8080", "mqim HTTP API")
	broker := flag.String("mqtt", "tcp://127.0.0.1:1883", "mqim MQTT listener")
	key := flag.String("key", os.Getenv("MQIM_SERVICE_KEY"), "service key (or $MQIM_SERVICE_KEY)")
	senders := flag.Int("senders", 16, "concurrent senders")
	msgs := flag.Int("msgs", 200, "messages per sender")
	groupSize := flag.Int("group", 0, "send into one group of this many members (senders included); 0: 1:1")
	prefix := flag.String("prefix", "load"+strconv.FormatInt(time.Now().Unix()%100000, 10), "user id prefix (fresh ids each run)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *key == "" {
		fail("a service key is required (-key or MQIM_SERVICE_KEY)")
	}
	r := &run{http: *httpURL, broker: *broker, key: *key}
	if err := r.do(*prefix, *senders, *msgs, *groupSize, *timeout); err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "mqim-load:", msg)
	os.Exit(1)
}

type run struct {
	http, broker, key string
	lat               []time.Duration
	mu                sync.Mutex
	delivered         atomic.Int64
}

func (r *run) api(method, path, bearer string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, r.http+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (r *run) user(uid string) (string, error) {
	if err := r.api("PUT", "/v1/users/"+uid, r.key, map[string]string{"name": uid}, nil); err != nil {
		return "", err
	}
	var tok struct {
		Token string `json:"token"`
	}
	err := r.api("POST", "/v1/users/"+uid+"/tokens", r.key, map[string]int{"ttl_seconds": 3600}, &tok)
	return tok.Token, err
}

// connect opens a device that records the latency of every text message it
// receives from someone else (the payload carries the send time).
func (r *run) connect(uid, tok string) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(r.broker).SetClientID(uid + "/load").SetUsername(uid).SetPassword(tok).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(false).SetConnectTimeout(10 * time.Second)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		var ev struct {
			Kind, From string
			Body       struct{ Text string }
		}
		if json.Unmarshal(m.Payload(), &ev) != nil || ev.Kind != "msg" || ev.From == uid {
			return
		}
		sent, err := strconv.ParseInt(strings.SplitN(ev.Body.Text, " ", 2)[0], 10, 64)
		if err != nil {
			return
		}
		r.delivered.Add(1)
		r.mu.Lock()
		r.lat = append(r.lat, time.Since(time.Unix(0, sent)))
		r.mu.Unlock()
	})
	c := mqtt.NewClient(o)
	t := c.Connect()
	if !t.WaitTimeout(15*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", uid, t.Error())
	}
	return c, nil
}

func (r *run) do(prefix string, senders, msgs, groupSize int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	n := senders * 2
	if groupSize > 0 {
		n = max(groupSize, senders)
	}
	uids := make([]string, n)
	clients := make([]mqtt.Client, n)
	for i := range uids {
		uids[i] = fmt.Sprintf("%s-%d", prefix, i)
		tok, err := r.user(uids[i])
		if err != nil {
			return err
		}
		if clients[i], err = r.connect(uids[i], tok); err != nil {
			return err
		}
		defer clients[i].Disconnect(100)
	}
	topic := func(i int) string { return "im/u/" + uids[senders+i] }
	expected := int64(senders * msgs)
	if groupSize > 0 {
		gid := prefix + "-g"
		if err := r.api("POST", "/v1/groups", r.key, map[string]any{"id": gid, "name": gid, "owner": uids[0], "members": uids[1:]}, nil); err != nil {
			return err
		}
		topic = func(int) string { return "im/g/" + gid }
		expected = int64(senders * msgs * (n - 1))
	}
	fmt.Printf("mqim-load: %d senders x %d messages, %s, %d devices\n", senders, msgs, map[bool]string{true: fmt.Sprintf("group of %d", n), false: "1:1"}[groupSize > 0], n)
	start := time.Now()
	var wg sync.WaitGroup
	var errs atomic.Int64
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < msgs && time.Now().Before(deadline); j++ {
				payload := fmt.Sprintf(`{"cid":"%s-%d","type":"text","body":{"text":"%d load message %d"}}`, uids[i], j, time.Now().UnixNano(), j)
				t := clients[i].Publish(topic(i), 1, false, payload)
				if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	sendDur := time.Since(start)
	for r.delivered.Load() < expected && time.Now().Before(deadline) && time.Since(start) < sendDur+30*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	total := time.Since(start)
	r.mu.Lock()
	lat := append([]time.Duration(nil), r.lat...)
	r.mu.Unlock()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("sent:      %d messages in %v = %.0f msgs/s (PUBACKed), %d failed\n", senders*msgs, sendDur.Round(time.Millisecond),
		float64(senders*msgs)/sendDur.Seconds(), errs.Load())
	fmt.Printf("delivered: %d of %d in %v = %.0f deliveries/s\n", r.delivered.Load(), expected, total.Round(time.Millisecond),
		float64(r.delivered.Load())/total.Seconds())
	fmt.Printf("latency:   p50 %v  p90 %v  p99 %v  max %v\n", pct(0.5).Round(10*time.Microsecond), pct(0.9).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	if r.delivered.Load() < expected || errs.Load() > 0 {
		return fmt.Errorf("incomplete run")
	}
	return nil
}
