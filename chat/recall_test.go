package chat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
)

// The committer decides recalls and edits again against what came before
// them: two recalls of one message in one batch store one record (the
// other is a no-op), and an edit queued behind a recall of the same
// message is refused.
func TestChangesDecidedInBatch(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		f, svc := newFaulty(t, backend, time.Minute, "alice", "bob", "plug", "sink")
		ctx := context.Background()
		res, err := svc.Send(ctx, &chat.Draft{From: "alice", To: "bob", Type: "text", Body: text("hi")})
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.ID
		var mu sync.Mutex
		var records int
		var editErr error
		holdCommit(t, f, svc, 3, func(wg *sync.WaitGroup) {
			for i := 0; i < 2; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := svc.Recall(ctx, chat.Actor{UserID: "alice"}, "", id)
					if err != nil {
						t.Errorf("recall: %v", err)
						return
					}
					mu.Lock()
					if r.Record != nil {
						records++
					}
					mu.Unlock()
					if !r.Msg.Recalled {
						t.Errorf("recall answered a message not recalled: %+v", r.Msg)
					}
				}()
			}
			testutil.Eventually(t, 10*time.Second, func() error {
				if svc.QueueLen() < 2 {
					return context.DeadlineExceeded
				}
				return nil
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, editErr = svc.Edit(ctx, chat.Actor{UserID: "alice"}, "", id, text("changed"))
			}()
		})
		if records != 1 {
			t.Errorf("%d records stored for two recalls in one batch, want 1", records)
		}
		if e := chat.AsError(editErr); e == nil || e.Code != chat.CodeForbidden {
			t.Errorf("edit behind a recall: %v, want forbidden", editErr)
		}
		h, err := svc.History(ctx, "bob", res.Msg.Conv, chat.HistoryQuery{Forward: true, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 || h[1].Type != chat.TypeRecall || !h[0].Recalled {
			t.Errorf("history = %d messages, want the recalled one and one record", len(h))
		}
	})
}

// A message recalled by another writer (another node) after the rules
// passed: the commit finds it recalled, the committer reads it again, and
// the recall is a no-op; an edit is refused.
func TestChangeAfterAnotherWriter(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		f, svc := newFaulty(t, backend, time.Minute, "alice", "bob", "plug", "sink")
		ctx := context.Background()
		res, err := svc.Send(ctx, &chat.Draft{From: "alice", To: "bob", Type: "text", Body: text("hi")})
		if err != nil {
			t.Fatal(err)
		}
		m := res.Msg
		other := func() { // another node's recall, with the next seq
			rec := &store.Message{ID: "01OTHERNODERECALL", Conv: m.Conv, Seq: m.Seq + 1, From: "alice", To: "bob", Type: "recall",
				Body: store.JSON(`{"id":"` + m.ID + `"}`), TS: time.Now().UnixMilli()}
			if err := f.Store.Commit(ctx, []store.Write{{Msg: rec, Kind: store.KindDirect, Recall: m.ID}}); err != nil {
				t.Error(err)
			}
		}
		var r *chat.ChangeResult
		var editErr error
		holdCommit(t, f, svc, 2, func(wg *sync.WaitGroup) {
			wg.Add(2)
			go func() {
				defer wg.Done()
				var err error
				if r, err = svc.Recall(ctx, chat.Actor{UserID: "alice"}, m.Conv, m.ID); err != nil {
					t.Errorf("recall: %v", err)
				}
			}()
			go func() {
				defer wg.Done()
				_, editErr = svc.Edit(ctx, chat.Actor{UserID: "alice"}, m.Conv, m.ID, text("changed"))
			}()
			testutil.Eventually(t, 10*time.Second, func() error {
				if svc.QueueLen() < 2 {
					return context.DeadlineExceeded
				}
				return nil
			})
			other()
		})
		if r == nil || r.Record != nil || !r.Msg.Recalled {
			t.Errorf("recall after another writer's: %+v, want a no-op", r)
		}
		if e := chat.AsError(editErr); e == nil || e.Code != chat.CodeForbidden {
			t.Errorf("edit after another writer's recall: %v, want forbidden", editErr)
		}
		h, err := svc.History(ctx, "bob", m.Conv, chat.HistoryQuery{Forward: true, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 {
			t.Errorf("history has %d messages, want the message and the other node's record", len(h))
		}
	})
}
