package chat_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
	"github.com/mqim/mqim/store/sqlstore"
)

// searchBenchEnv enables BenchmarkSearchLarge and sets its number of
// messages (e.g. 1000000); unset, the benchmark is skipped, so `make test`
// and plain `go test -bench .` stay quick.
const searchBenchEnv = "MQIM_SEARCH_BENCH_MESSAGES"

// benchWords are the words benchmark messages are made of: Chinese,
// Japanese, Korean and English, as chats mix them.
var benchWords = strings.Fields("你好 世界 明天 开会 吃饭 我们 项目 进度 今天 下午 晚上 电影 北京 上海 老师 同学 周末 谢谢 没问题 好的 " +
	"こんにちは 会議 ありがとう 明日 よろしく 안녕하세요 회의 내일 감사합니다 " +
	"hello world meeting tomorrow lunch project status report please thanks ok see you later review deploy server bug fix coffee")

// benchText is a message of 3 to 10 words (CJK words unspaced, English
// ones spaced), and about once in 100,000 messages the rare word "zzqx".
func benchText(r *rand.Rand) string {
	var b strings.Builder
	for i, n := 0, 3+r.IntN(8); i < n; i++ {
		w := benchWords[r.IntN(len(benchWords))]
		if i > 0 && w[0] < 0x80 {
			b.WriteByte(' ')
		}
		if i == 0 && w[0] < 0x80 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
	}
	if r.IntN(100_000) == 0 {
		b.WriteString(" zzqx")
	}
	return b.String()
}

// BenchmarkSearchLarge measures chat.Service.Search over N stored messages
// (MQIM_SEARCH_BENCH_MESSAGES) in 1,000 group conversations, on each store:
// for a user in 50 of them ("typical", about N/20 messages visible) and a
// user in all of them ("heavy", all N). It also reports how long storing
// them took, how long the schema-0006 backfill of all of them takes, and
// the index's size. Run:
//
//	MQIM_SEARCH_BENCH_MESSAGES=1000000 scripts/test-mysql.sh go test -run '^$' -bench SearchLarge -benchtime 10x -timeout 60m ./chat/
func BenchmarkSearchLarge(b *testing.B) {
	total, _ := strconv.Atoi(os.Getenv(searchBenchEnv))
	if total <= 0 {
		b.Skip(searchBenchEnv + " not set (e.g. 1000000)")
	}
	const convs = 1000
	perConv := total / convs
	for _, backend := range testutil.Backends() {
		b.Run(backend, func(b *testing.B) {
			st := testutil.OpenStore(b, backend)
			ctx := context.Background()
			loadSearchBench(b, st, convs, perConv)
			reportIndex(b, st, backend)
			svc := startService(b, st, 0)
			for _, user := range []string{"typical", "heavy"} {
				for _, c := range []struct{ name, q, conv string }{
					{"cjk2", "好世", ""}, // hits: few (好世 only spans 你好+世界)
					{"cjk2-common", "会議", ""},
					{"english", "HELLO", ""},
					{"phrase", "tomorrow lunch", ""},
					{"rare", "zzqx", ""},
					{"none", "nothing like this", ""},
					{"one-conv", "hello", "g:c0000"},
				} {
					b.Run(fmt.Sprintf("user=%s/q=%s", user, c.name), func(b *testing.B) {
						var n int
						for b.Loop() {
							ms, _, err := svc.Search(ctx, user, chat.SearchQuery{Q: c.q, Conv: c.conv, Limit: 20})
							if err != nil {
								b.Fatal(err)
							}
							n = len(ms)
						}
						b.ReportMetric(float64(n), "hits")
					})
				}
			}
		})
	}
}

// loadSearchBench stores convs groups of perConv messages each (a
// "created" system message, then text), through Commit in batches of one
// message per conversation, interleaved in time. "heavy" is in every
// group, "typical" in every 20th, and each group has two senders.
func loadSearchBench(b *testing.B, st *sqlstore.Store, convs, perConv int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	const base = int64(1_764_140_000_000)
	start := time.Now()
	var ts int64
	for seq := int64(1); seq <= int64(perConv); seq++ {
		batch := make([]store.Write, 0, convs)
		for c := range convs {
			gid := fmt.Sprintf("c%04d", c)
			ts++
			m := &store.Message{ID: fmt.Sprintf("m%04d%06d", c, seq), Conv: "g:" + gid, Seq: seq, To: gid, TS: base + ts}
			w := store.Write{Msg: m, Kind: store.KindGroup}
			if seq == 1 {
				m.From, m.Type, m.Body = "$system", "system", store.JSON(`{"event":"created"}`)
				w.NewGroup = &store.Group{ID: gid, Name: gid, Owner: "heavy", JoinPolicy: "invite", CreatedAt: m.TS, UpdatedAt: m.TS}
				w.AddMembers = []store.Member{{UserID: "heavy", Role: store.RoleOwner}, {UserID: gid + "a", Role: store.RoleMember}, {UserID: gid + "b", Role: store.RoleMember}}
				if c%20 == 0 {
					w.AddMembers = append(w.AddMembers, store.Member{UserID: "typical", Role: store.RoleMember})
				}
			} else {
				m.From = gid + string(rune('a'+seq%2))
				m.Type = "text"
				m.Body = store.JSON(fmt.Sprintf(`{"text":%q}`, benchText(r)))
				w.Reader = m.From
			}
			batch = append(batch, w)
		}
		if err := st.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d messages in %d conversations in %v", convs*perConv, convs, time.Since(start).Round(time.Millisecond))
	// The backfill of schema 0006, over all of them.
	for _, q := range []string{`DELETE FROM message_search WHERE content <> ''`, `DELETE FROM schema_migrations WHERE version = 6`} {
		if _, err := st.DB().ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	start = time.Now()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("backfill (migration 0006) of %d messages: %v", convs*perConv, time.Since(start).Round(time.Millisecond))
}

// reportIndex logs the search table's rows and size.
func reportIndex(b *testing.B, st *sqlstore.Store, backend string) {
	ctx := context.Background()
	var rows int64
	if err := st.DB().GetContext(ctx, &rows, `SELECT COUNT(*) FROM message_search WHERE content <> ''`); err != nil {
		b.Fatal(err)
	}
	var size, msgs int64
	var err error
	if backend == "sqlite" {
		err = st.DB().GetContext(ctx, &size, `SELECT SUM(pgsize) FROM dbstat WHERE name = 'message_search'`)
		if err == nil {
			err = st.DB().GetContext(ctx, &msgs, `SELECT SUM(pgsize) FROM dbstat WHERE name IN ('messages', 'messages_sender_cid', 'sqlite_autoindex_messages_1')`)
		}
	} else {
		_, _ = st.DB().ExecContext(ctx, `ANALYZE TABLE message_search, messages`)
		err = st.DB().GetContext(ctx, &size, `SELECT data_length + index_length FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'message_search'`)
		if err == nil {
			err = st.DB().GetContext(ctx, &msgs, `SELECT data_length + index_length FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'messages'`)
		}
	}
	if err != nil {
		b.Logf("index: %d rows, size unknown (%v)", rows, err)
		return
	}
	b.Logf("index: %d rows, %.1f MiB (messages table and its indexes: %.1f MiB)", rows, float64(size)/(1<<20), float64(msgs)/(1<<20))
}
