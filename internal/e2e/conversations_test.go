package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
)

// listRow is one conversation of GET /v1/conversations.
type listRow struct {
	ID          string `json:"id"`
	LastSeq     int64  `json:"last_seq"`
	ReadSeq     int64  `json:"read_seq"`
	MinSeq      int64  `json:"min_seq"`
	Unread      int64  `json:"unread"`
	Pinned      bool   `json:"pinned"`
	Muted       bool   `json:"muted"`
	Hidden      bool   `json:"hidden"`
	UpdatedAt   int64  `json:"updated_at"`
	LastMessage *struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	} `json:"last_message"`
}

// listPage fetches one page of tok's conversation list and the next cursor.
func listPage(t *testing.T, srv *testutil.Server, tok, query string) ([]listRow, string) {
	t.Helper()
	req, err := http.NewRequest("GET", srv.HTTPURL+"/v1/conversations?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	st, hdr, body := srv.Do(t, req)
	if st != 200 {
		t.Fatalf("GET /v1/conversations?%s: %d %s", query, st, body)
	}
	var rows []listRow
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatal(err)
	}
	return rows, hdr.Get("X-Next-Cursor")
}

// listAll pages through the whole list with pages of size.
func listAll(t *testing.T, srv *testutil.Server, tok string, size int) []listRow {
	t.Helper()
	var all []listRow
	q := fmt.Sprintf("limit=%d", size)
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("paging by %d does not end", size)
		}
		rows, next := listPage(t, srv, tok, q)
		all = append(all, rows...)
		if next == "" {
			return all
		}
		if len(rows) != size {
			t.Fatalf("a page of %d rows with a next cursor, size %d", len(rows), size)
		}
		q = fmt.Sprintf("limit=%d&cursor=%s", size, next)
	}
}

func rowIDs(rows []listRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// The conversation list of a user with 30 conversations and 1,000
// messages: pinned first, then newest; pages of any size neither lose nor
// repeat a conversation; one that moves while a client pages is picked up
// by the next updated_after sync; unread counts are exact, in the list and
// in GET /v1/unread (muted listed, not in the total); hiding lasts until
// the next message; history pages both ways.
func TestConversationListAtScale(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		const peers, groups, total = 20, 10, 1000
		var convIDs []string
		for i := 0; i < peers; i++ {
			p := fmt.Sprintf("p%02d", i)
			srv.User(t, p)
			convIDs = append(convIDs, "d:alice:"+p)
		}
		for i := 0; i < groups; i++ {
			gid := fmt.Sprintf("g%02d", i)
			group(t, srv, gid, fmt.Sprintf("p%02d", i), "alice", fmt.Sprintf("p%02d", (i+1)%peers))
			convIDs = append(convIDs, "g:"+gid)
		}
		// 1,000 messages: conversation i gets its share, mostly from its
		// peers, every 7th from alice (which reads the conversation up to her
		// own message). Each conversation is written by one goroutine, so
		// its seq order is the order of sends; groups start at seq 1 (created).
		type state struct {
			last, aliceLast int64 // seqs
		}
		want := make([]state, len(convIDs))
		var wg sync.WaitGroup
		errs := make(chan error, len(convIDs))
		for i := range convIDs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				n := total / len(convIDs)
				if i < total%len(convIDs) {
					n++
				}
				st := &want[i]
				peer := fmt.Sprintf("p%02d", i%peers)
				if i >= peers {
					st.last = 1 // the group's created message
				}
				for k := 0; k < n; k++ {
					from := peer
					if k%7 == 6 {
						from = "alice"
					}
					body := map[string]any{"from": from, "type": "text", "body": map[string]string{"text": fmt.Sprint(k)}}
					if i < peers {
						body["to"] = "alice"
						if from == "alice" {
							body["to"] = peer
						}
					} else {
						body["group"] = convIDs[i][2:]
					}
					st2, out := srv.API(t, "POST", "/v1/messages", testutil.ServiceKey, body)
					if st2 != 201 {
						errs <- fmt.Errorf("send %d to %s: %d %s", k, convIDs[i], st2, out)
						return
					}
					st.last++
					if from == "alice" {
						st.aliceLast = st.last
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		unreadOf := func(i int) int64 {
			if i >= peers && want[i].aliceLast == 0 {
				return want[i].last - 1 // she had read the created message
			}
			return want[i].last - want[i].aliceLast
		}

		// Pin three, mute two, read one part of the way, hide one.
		pinned := map[string]bool{convIDs[3]: true, convIDs[25]: true, convIDs[17]: true}
		for id := range pinned {
			srv.MustAPI(t, 200, "PATCH", "/v1/conversations/"+id, ta, map[string]bool{"pinned": true}, nil)
		}
		muted := map[string]bool{convIDs[5]: true, convIDs[25]: true}
		for id := range muted {
			srv.MustAPI(t, 200, "PATCH", "/v1/conversations/"+id, ta, map[string]bool{"muted": true}, nil)
		}
		read := want[8].last - 3
		srv.MustAPI(t, 200, "POST", "/v1/conversations/"+convIDs[8]+"/read", ta, map[string]int64{"seq": read}, nil)
		want[8].aliceLast = max(want[8].aliceLast, read) // a read never lowers
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/"+convIDs[11], ta, map[string]bool{"hidden": true}, nil)

		full := listAll(t, srv, ta, 200)
		if len(full) != len(convIDs) {
			t.Fatalf("list has %d conversations, want %d: %v", len(full), len(convIDs), rowIDs(full))
		}
		byID := map[string]listRow{}
		for i, r := range full {
			byID[r.ID] = r
			if (i < len(pinned)) != r.Pinned || r.Pinned != pinned[r.ID] {
				t.Fatalf("row %d %s pinned=%v: want the pinned %v first; list %v", i, r.ID, r.Pinned, pinned, rowIDs(full))
			}
			if i > 0 {
				p := full[i-1]
				if p.Pinned == r.Pinned && (p.UpdatedAt < r.UpdatedAt || (p.UpdatedAt == r.UpdatedAt && p.ID > r.ID)) {
					t.Errorf("rows %d and %d out of order: %+v then %+v", i-1, i, p, r)
				}
			}
		}
		var sum int64
		for i, id := range convIDs {
			r := byID[id]
			if r.LastSeq != want[i].last || r.Unread != unreadOf(i) || r.Muted != muted[id] || r.Hidden != (i == 11) {
				t.Errorf("%s: %+v, want last_seq %d unread %d muted %v", id, r, want[i].last, unreadOf(i), muted[id])
			}
			if r.LastMessage == nil || r.LastMessage.Seq != want[i].last {
				t.Errorf("%s: last_message %+v, want seq %d", id, r.LastMessage, want[i].last)
			}
			if !muted[id] {
				sum += unreadOf(i)
			}
		}
		var un struct {
			Total         int64            `json:"total"`
			Conversations map[string]int64 `json:"conversations"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/unread", ta, nil, &un)
		if un.Total != sum {
			t.Errorf("unread total %d, want %d (muted left out)", un.Total, sum)
		}
		for i, id := range convIDs {
			if n := unreadOf(i); un.Conversations[id] != n {
				t.Errorf("unread of %s: %d, want %d", id, un.Conversations[id], n)
			}
		}
		if len(un.Conversations) != len(convIDs) {
			t.Errorf("unread lists %d conversations, want %d (each has unread)", len(un.Conversations), len(convIDs))
		}

		// Pages of every size give the same list.
		for _, size := range []int{1, 4, 7, 29, 30, 31} {
			if got := rowIDs(listAll(t, srv, ta, size)); !slices.Equal(got, rowIDs(full)) {
				t.Errorf("pages of %d: %v, want %v", size, got, rowIDs(full))
			}
		}

		// A client pages by 10 while a conversation it has not reached yet
		// gets a message: the pages miss it (it moved to the front), the
		// next updated_after sync from the list's newest change has it.
		var mark int64
		for _, r := range full {
			mark = max(mark, r.UpdatedAt)
		}
		page1, next := listPage(t, srv, ta, "limit=10")
		if next == "" || !slices.Equal(rowIDs(page1), rowIDs(full[:10])) {
			t.Fatalf("first page %v, want %v", rowIDs(page1), rowIDs(full[:10]))
		}
		mover := full[len(full)-1].ID // the oldest: on the last page
		var moved struct {
			Seq int64 `json:"seq"`
			TS  int64 `json:"ts"`
		}
		body := map[string]any{"from": "p19", "type": "text", "body": map[string]string{"text": "moves"}}
		if mover[0] == 'g' {
			body["group"] = mover[2:]
			body["from"] = "p" + mover[3:] // the group's owner
		} else {
			body["to"], body["from"] = "alice", mover[len("d:alice:"):]
		}
		srv.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey, body, &moved)
		var rest []listRow
		for q := "limit=10&cursor=" + next; ; {
			rows, n := listPage(t, srv, ta, q)
			rest = append(rest, rows...)
			if n == "" {
				break
			}
			q = "limit=10&cursor=" + n
		}
		seen := map[string]int{}
		for _, r := range append(page1, rest...) {
			seen[r.ID]++
			if seen[r.ID] > 1 {
				t.Errorf("%s listed twice while paging", r.ID)
			}
		}
		// The sync is "at or after": what changed in the mark's millisecond
		// may come again, nothing older does.
		sync, _ := listPage(t, srv, ta, "updated_after="+strconv.FormatInt(mark, 10))
		var got *listRow
		for i, r := range sync {
			if r.ID == mover {
				got = &sync[i]
			} else if r.UpdatedAt != mark {
				t.Errorf("updated_after=%d sync lists %+v, unchanged since %d", mark, r, r.UpdatedAt)
			}
		}
		if got == nil || got.LastSeq != moved.Seq || got.Unread != byID[mover].Unread+1 || got.UpdatedAt < mark {
			t.Fatalf("updated_after sync after %s moved: %+v (moved to seq %d)", mover, sync, moved.Seq)
		}
		for _, id := range convIDs {
			if id != mover && seen[id] != 1 {
				t.Errorf("%s seen %d times while paging", id, seen[id])
			}
		}

		// The hidden conversation comes back with its next message.
		srv.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey,
			map[string]any{"from": "p11", "to": "alice", "type": "text", "body": map[string]string{"text": "back"}}, nil)
		if r := byIDOf(listAll(t, srv, ta, 50))[convIDs[11]]; r.Hidden {
			t.Errorf("%s still hidden after a new message: %+v", convIDs[11], r)
		}

		// History of the busiest conversation, backward and forward, in
		// pages of 9: every seq once, in order.
		conv, last := convIDs[0], want[0].last
		var back []int64
		for before := last + 1; before > 1; {
			var page []msg
			srv.MustAPI(t, 200, "GET", fmt.Sprintf("/v1/conversations/%s/messages?before_seq=%d&limit=9", conv, before), ta, nil, &page)
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				back = append(back, m.Seq)
			}
			before = page[len(page)-1].Seq
		}
		var fwd []int64
		for after := int64(0); ; {
			var page []msg
			srv.MustAPI(t, 200, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=9", conv, after), ta, nil, &page)
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				fwd = append(fwd, m.Seq)
			}
			after = page[len(page)-1].Seq
		}
		for i := range fwd {
			if fwd[i] != int64(i+1) || back[len(back)-1-i] != int64(i+1) {
				t.Fatalf("history of %s: forward %v, backward %v", conv, fwd, back)
			}
		}
		if int64(len(fwd)) != last || len(back) != len(fwd) {
			t.Fatalf("history of %s: %d forward, %d backward, want %d", conv, len(fwd), len(back), last)
		}
	})
}

func byIDOf(rows []listRow) map[string]listRow {
	out := make(map[string]listRow, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}
