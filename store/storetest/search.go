package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mqim/mqim/store"
)

// Message search (store.Messages.Search): substrings of folded text, only
// what the user may see, as messages are now, newest first.
var searchTests = []test{
	{"SubstringsAndCase", testSearchSubstrings},
	{"VisibilityWindow", testSearchVisibility},
	{"RecallAndEdit", testSearchRecallEdit},
	{"PagingNewestFirst", testSearchPaging},
}

// search runs a search for the folded q (store.FoldText, as package chat
// folds a query) and returns the result ids in order.
func (f *fixture) search(userID, q, conv string, limit int, before *store.SearchCursor) []*store.Message {
	f.t.Helper()
	ms, err := f.st.Search(f.ctx, userID, store.SearchQuery{Text: store.FoldText(q), Conv: conv, Limit: limit, Before: before})
	if err != nil {
		f.t.Fatalf("Search(%s, %q): %v", userID, q, err)
	}
	return ms
}

func (f *fixture) wantSearch(userID, q, conv string, want ...string) {
	f.t.Helper()
	got := msgIDs(f.search(userID, q, conv, 100, nil))
	if !slices.Equal(got, want) {
		f.t.Errorf("%s searches %q (conv %q): %v, want %v", userID, q, conv, got, want)
	}
}

func msgIDs(ms []*store.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// typed is a message of the given type and body from alice to bob.
func typed(id string, seq int64, typ, body string) *store.Message {
	m := dm(id, seq, "alice", "bob", base+seq)
	m.Type, m.Body = typ, store.JSON(body)
	return m
}

func testSearchSubstrings(t *testing.T, f *fixture) {
	ms := []*store.Message{
		typed("m1", 1, "text", `{"text":"你好世界"}`),
		typed("m2", 2, "text", `{"text":"Hello World"}`),
		typed("m3", 3, "text", `{"text":"こんにちは世界、ｶﾀｶﾅ"}`),
		typed("m4", 4, "text", `{"text":"안녕하세요 여러분"}`),
		typed("m5", 5, "text", `{"text":"ＡＢＣ１２３ Straße\nnext line"}`),
		typed("m6", 6, "file", `{"url":"https://x/f","name":"Report_2026.PDF","size":10}`),
		typed("m7", 7, "location", `{"lat":35.6,"lng":139.7,"name":"東京タワー"}`),
		typed("m8", 8, "image", `{"url":"https://x/hello.png"}`),
		typed("m9", 9, "custom", `{"text":"hello custom"}`),
		typed("m10", 10, "text", `{"text":"100% sure_thing!"}`),
	}
	batch := []store.Write{firstDM(ms[0])}
	for _, m := range ms[1:] {
		batch = append(batch, direct(m))
	}
	f.commit(batch...)
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"好世", []string{"m1"}},       // two CJK characters: below any trigram
		{"你好世界", []string{"m1"}},     // the whole text
		{"好", []string{"m1"}},        // one
		{"世界", []string{"m3", "m1"}}, // newest first
		{"にちは", []string{"m3"}},
		{"カタカナ", []string{"m3"}}, // half-width katakana, NFKC
		{"녕하", []string{"m4"}},
		{"hello", []string{"m2"}}, // not the image's url, not the custom body
		{"HELLO wORLD", []string{"m2"}},
		{"o w", []string{"m2"}},
		{"abc123", []string{"m5"}},  // full-width, NFKC
		{"strasse", []string{"m5"}}, // ß, full case folding
		{"STRASSE NEXT", []string{"m5"}},
		{"report_2026.pdf", []string{"m6"}}, // file name
		{"タワー", []string{"m7"}},             // location name
		{"_", []string{"m10", "m6"}},        // LIKE's wildcards are plain characters
		{"%", []string{"m10"}},
		{"0%", []string{"m10"}},
		{"!", []string{"m10"}},
		{"e_t", []string{"m10"}},
		{"zz", []string{}},
		{"text", []string{}}, // JSON keys are not text
		{"url", []string{}},
		{"custom", []string{}},
		{"2026-", []string{}},
	} {
		f.wantSearch("alice", c.q, "", c.want...)
	}
	// The peer finds the same; a stranger nothing.
	f.wantSearch("bob", "世界", "", "m3", "m1")
	f.wantSearch("carol", "世界", "")
	f.wantSearch("alice", "世界", directConv("alice", "bob"), "m3", "m1")
	f.wantSearch("alice", "世界", directConv("alice", "carol"))
	// A result is the stored message.
	got := f.search("alice", "好世", "", 10, nil)
	if len(got) == 1 {
		wantMessage(t, "result", got[0], ms[0])
	}
}

func testSearchVisibility(t *testing.T, f *fixture) {
	g := "g:g"
	say := func(id string, seq int64, from string) *store.Message {
		m := gm(id, "g", seq, from, base+seq)
		m.Body = store.JSON(fmt.Sprintf(`{"text":"会議 %s"}`, id))
		return m
	}
	f.commit(createGroup("s1", "g", "owen", base+1, "eve"))
	f.commit(post(say("before", 2, "owen")))
	f.commit(joins(sys("s3", "g", 3, "joined", base+3), "dave"))
	f.commit(post(say("between", 4, "eve")))
	f.commit(leaves(sys("s5", "g", 5, "left", base+5), "eve"))
	f.commit(post(say("after", 6, "dave")))
	// A 1:1 conversation of others.
	other := dm("private", 1, "owen", "zed", base+7)
	other.Body = store.JSON(`{"text":"会議 private"}`)
	f.commit(firstDM(other))

	f.wantSearch("owen", "会議", "", "private", "after", "between", "before")
	f.wantSearch("owen", "会議", g, "after", "between", "before")
	// dave sees from his join on.
	f.wantSearch("dave", "会議", "", "after", "between")
	// eve, a former member, up to her leave.
	f.wantSearch("eve", "会議", "", "between", "before")
	f.wantSearch("eve", "会議", g, "between", "before")
	// Outsiders, and other users' conversations, never.
	f.wantSearch("mallory", "会議", "")
	f.wantSearch("dave", "private", "")
	f.wantSearch("dave", "会議", directConv("owen", "zed"))
	// System messages are not results.
	for _, q := range []string{"created", "joined", "left", "event"} {
		f.wantSearch("owen", q, "")
	}
	// eve comes back: she sees from her new join point on, like History.
	f.commit(joins(sys("s8", "g", 7, "joined", base+8), "eve"))
	f.commit(post(say("back", 8, "owen")))
	f.wantSearch("eve", "会議", "", "back")
}

func testSearchRecallEdit(t *testing.T, f *fixture) {
	m1 := dm("m1", 1, "alice", "bob", base+1)
	m1.Body = store.JSON(`{"text":"original wording"}`)
	m2 := dm("m2", 2, "bob", "alice", base+2)
	m2.Body = store.JSON(`{"text":"keep this wording secret"}`)
	m3 := dm("m3", 3, "alice", "bob", base+3)
	m3.Body = store.JSON(`{"text":"draft wording"}`)
	m4 := dm("m4", 4, "alice", "bob", base+4)
	m4.Body = store.JSON(`{"text":"recalled at once wording"}`)
	f.commit(firstDM(m1), direct(m2), direct(m3), direct(m4), recallOf("r5", 5, "alice", m4, base+5))
	f.wantSearch("alice", "wording", "", "m3", "m2", "m1")

	// A recall: never found again, neither is its record.
	f.commit(recallOf("r6", 6, "bob", m2, base+6))
	f.wantSearch("alice", "wording", "", "m3", "m1")
	f.wantSearch("bob", "secret", "")

	// An edit: found by the new text only; the edit record is no result.
	f.commit(editOf("e7", 7, m1, "new phrasing", base+7))
	f.wantSearch("alice", "original", "")
	f.wantSearch("alice", "phrasing", "", "m1")
	got := f.search("alice", "phrasing", "", 10, nil)
	if len(got) == 1 && (got[0].EditedAt != base+7 || string(got[0].Body) != `{"text":"new phrasing"}`) {
		t.Errorf("edited result: %+v", got[0])
	}
	// Edited twice in one batch, then recalled: the last text, then nothing.
	f.commit(editOf("e8", 8, m3, "second", base+8), editOf("e9", 9, m3, "third", base+9))
	f.wantSearch("alice", "draft", "")
	f.wantSearch("alice", "second", "")
	f.wantSearch("alice", "third", "", "m3")
	f.commit(recallOf("r10", 10, "alice", m3, base+10))
	f.wantSearch("alice", "third", "")
	f.wantSearch("alice", "wording", "")
	f.wantSearch("alice", "phrasing", "", "m1")
}

func testSearchPaging(t *testing.T, f *fixture) {
	// 25 matching messages over two conversations, interleaved in time,
	// some sharing a millisecond, plus some that do not match.
	var want []string
	seq := map[string]int64{}
	var batch []store.Write
	for i := range 30 {
		to := "bob"
		if i%2 == 1 {
			to = "carol"
		}
		conv := directConv("alice", to)
		seq[conv]++
		m := dm(fmt.Sprintf("m%02d", i), seq[conv], "alice", to, base+int64(i/3))
		m.Body = store.JSON(fmt.Sprintf(`{"text":"分页 page %d"}`, i))
		if i%6 == 5 {
			m.Body = store.JSON(`{"text":"other"}`)
		} else {
			want = append(want, m.ID)
		}
		w := direct(m)
		if seq[conv] == 1 {
			w = firstDM(m)
		}
		batch = append(batch, w)
	}
	f.commit(batch...)
	slices.Reverse(want) // newest first: ts descending, then id descending
	for _, limit := range []int{1, 7, 10, 25, 100} {
		var got []string
		var before *store.SearchCursor
		for range 30 {
			page := f.search("alice", "分页", "", limit, before)
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(page))
			}
			got = append(got, msgIDs(page)...)
			if len(page) < limit {
				break
			}
			last := page[len(page)-1]
			before = &store.SearchCursor{TS: last.TS, ID: last.ID}
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: pages %v, want %v", limit, got, want)
		}
	}
	// bob's conversation alone.
	var bobs []string
	for _, id := range want {
		var i int
		fmt.Sscanf(id, "m%d", &i)
		if i%2 == 0 {
			bobs = append(bobs, id)
		}
	}
	f.wantSearch("alice", "分页", directConv("alice", "bob"), bobs...)
	f.wantSearch("bob", "PAGE", "", bobs...)
}
