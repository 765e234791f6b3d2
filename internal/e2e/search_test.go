package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
)

// searchHit is a search result, a message as history shows it.
type searchHit struct {
	ID       string          `json:"id"`
	Conv     string          `json:"conv"`
	Seq      int64           `json:"seq"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	EditedAt int64           `json:"edited_at"`
}

// search runs GET /v1/messages/search?query as tok and returns the status,
// the results (on 200), the next cursor and the raw body.
func search(t *testing.T, srv *testutil.Server, tok, query string) (int, []searchHit, string, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", srv.HTTPURL+"/v1/messages/search?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		t.Errorf("search %s: %d %s", query, resp.StatusCode, body)
	}
	var hits []searchHit
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &hits); err != nil {
			t.Fatalf("search %s: %v: %s", query, err, body)
		}
	}
	return resp.StatusCode, hits, resp.Header.Get("X-Next-Cursor"), body
}

// wantHits checks that a search as tok finds exactly the ids, in order.
func wantHits(t *testing.T, srv *testutil.Server, who, tok, query string, want ...string) []searchHit {
	t.Helper()
	st, hits, _, body := search(t, srv, tok, query)
	got := []string{}
	for _, h := range hits {
		got = append(got, h.ID)
	}
	if st != 200 || !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("%s searches %s: %d %v, want 200 %v (%s)", who, query, st, got, want, body)
	}
	return hits
}

func q(text string, more ...string) string {
	return "q=" + url.QueryEscape(text) + strings.Join(more, "")
}

func TestSearch(t *testing.T) {
	t.Parallel()
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		alice, bob, carol := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		dave, mallory := srv.User(t, "dave"), srv.User(t, "mallory")

		hello := sendText(t, srv, alice, "bob", "你好世界 Hello")
		tomorrow := sendText(t, srv, bob, "alice", "See you TOMORROW")
		srv.MustAPI(t, 201, "POST", "/v1/groups", alice, map[string]any{"id": "g", "name": "G", "members": []string{"bob", "carol"}}, nil)
		before := sendText(t, srv, alice, "g:g", "会議 before")
		oops := sendText(t, srv, alice, "g:g", "会議 oops")
		srv.MustAPI(t, 200, "POST", "/v1/groups/g/members", alice, map[string]any{"user_ids": []string{"dave"}}, nil)
		after := sendText(t, srv, bob, "g:g", "会議 after")
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/g/members/carol", carol, nil, nil)
		later := sendText(t, srv, alice, "g:g", "会議 later")
		recall(t, srv, 200, alice, oops.ID)
		edit(t, srv, 200, bob, tomorrow.ID, map[string]string{"text": "See you on Friday"})

		// CJK by substring (two characters), English by any case.
		for _, s := range []string{"好世", "世界", "你好世界", "hello", "HeLLo", "界 h"} {
			wantHits(t, srv, "alice", alice, q(s), hello.ID)
			wantHits(t, srv, "bob", bob, q(s), hello.ID)
		}
		// Edited: by its new text only. Recalled: never.
		wantHits(t, srv, "alice", alice, q("tomorrow"))
		hits := wantHits(t, srv, "alice", alice, q("friday"), tomorrow.ID)
		if len(hits) == 1 && (hits[0].EditedAt == 0 || !strings.Contains(string(hits[0].Body), "Friday")) {
			t.Errorf("edited hit %+v", hits[0])
		}
		wantHits(t, srv, "alice", alice, q("oops"))
		// Visibility: the whole group for its members from the start, from
		// the join on for dave, up to the leave for carol, nothing for
		// others; system messages are not results.
		wantHits(t, srv, "alice", alice, q("会議"), later.ID, after.ID, before.ID)
		wantHits(t, srv, "dave", dave, q("会議"), later.ID, after.ID)
		wantHits(t, srv, "carol", carol, q("会議"), after.ID, before.ID)
		wantHits(t, srv, "mallory", mallory, q("会議"))
		wantHits(t, srv, "dave", dave, q("hello"))
		wantHits(t, srv, "carol", carol, q("friday"))
		wantHits(t, srv, "alice", alice, q("created"))
		wantHits(t, srv, "alice", alice, q("dave"))
		// conv narrows; a conversation not the caller's is not_found.
		wantHits(t, srv, "alice", alice, q("会議", "&conv=g:g"), later.ID, after.ID, before.ID)
		wantHits(t, srv, "alice", alice, q("会議", "&conv=d:alice:bob"))
		wantHits(t, srv, "carol", carol, q("会議", "&conv=g:g"), after.ID, before.ID)
		for _, c := range []struct{ tok, query string }{
			{mallory, q("会議", "&conv=g:g")}, {dave, q("hello", "&conv=d:alice:bob")}, {alice, q("x", "&conv=d:alice:nobody")},
			{alice, q("x", "&conv=g:nope")}, {alice, q("x", "&conv=bogus")},
		} {
			st, _, _, body := search(t, srv, c.tok, c.query)
			if st != 404 || !strings.Contains(string(body), `"not_found"`) {
				t.Errorf("search %s: %d %s, want 404 not_found", c.query, st, body)
			}
		}

		// The service key searches as the user it names, and must name one.
		wantHits(t, srv, "service as dave", testutil.ServiceKey, q("会議", "&user_id=dave"), later.ID, after.ID)
		wantHits(t, srv, "service as mallory", testutil.ServiceKey, q("会議", "&user_id=mallory"))
		// A user token acts as its user only: user_id names nobody else.
		wantHits(t, srv, "mallory naming dave", mallory, q("会議", "&user_id=dave"))
		for _, c := range []struct {
			tok, query string
			st         int
			code       string
		}{
			{testutil.ServiceKey, q("会議"), 400, "invalid"},
			{testutil.ServiceKey, q("会議", "&user_id="), 400, "invalid"},
			{testutil.ServiceKey, q("会議", "&user_id=a%2Fb"), 400, "invalid"},
			{"", q("会議"), 401, "unauthorized"},
			{"junk", q("会議"), 401, "unauthorized"},
			{alice, "", 400, "invalid"},
			{alice, q(""), 400, "invalid"},
			{alice, q("  \t "), 400, "invalid"},
			{alice, q(strings.Repeat("好", 101)), 400, "invalid"},
			{alice, q("x", "&limit=0"), 400, "invalid"},
			{alice, q("x", "&limit=101"), 400, "invalid"},
			{alice, q("x", "&limit=ten"), 400, "invalid"},
			{alice, q("x", "&cursor=nope"), 400, "invalid"},
			{alice, "q=%FF", 400, "invalid"},
		} {
			st, _, _, body := search(t, srv, c.tok, c.query)
			if st != c.st || !strings.Contains(string(body), `"`+c.code+`"`) {
				t.Errorf("search %q: %d %s, want %d %s", c.query, st, body, c.st, c.code)
			}
		}
		// 100 characters (after trimming) are fine.
		wantHits(t, srv, "alice", alice, q("  "+strings.Repeat("好", 100)+"  "))

		// Pages: newest first, X-Next-Cursor until the end, no repeats.
		var want []string
		for i := range 7 {
			want = append(want, sendText(t, srv, carol, "dave", fmt.Sprintf("page %d 分页", i)).ID)
		}
		slices.Reverse(want)
		var got []string
		cursor := ""
		for range 10 {
			query := q("分页", "&limit=3")
			if cursor != "" {
				query += "&cursor=" + url.QueryEscape(cursor)
			}
			st, hits, next, body := search(t, srv, dave, query)
			if st != 200 || len(hits) > 3 {
				t.Fatalf("page: %d %s", st, body)
			}
			for _, h := range hits {
				got = append(got, h.ID)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages %v, want %v", got, want)
		}
		// The default page is 20.
		for range 20 {
			sendText(t, srv, carol, "dave", "more 分页")
		}
		if st, hits, next, _ := search(t, srv, carol, q("分页")); st != 200 || len(hits) != 20 || next == "" {
			t.Errorf("default page: %d, %d hits, next %q", st, len(hits), next)
		}
	})
}
