package chat

import (
	"cmp"
	"context"
	"slices"

	"github.com/mqim/mqim/store"
)

// ReplayEvent is one stored message rendered for replay to a device: the
// topic it is delivered on (the user's inbox for a 1:1 conversation, the
// group's topic), its conversation and seq, and the event (the msg event
// the history API returns for it).
type ReplayEvent struct {
	Topic   string
	Conv    string
	Seq     int64
	Payload []byte
}

// baselineSlack widens the conversations a replay looks at beyond the
// session's baseline: a message is stamped (TS) a moment before its commit.
const baselineSlack int64 = 60_000

// replayPage is how many messages one store read of a replay fetches.
const replayPage = 500

// Missed returns up to limit of the messages uid may see that a persistent
// session has not had, in seq order per conversation (one conversation
// after another, the least recently changed first): in each conversation of
// uid, those after after[conv]; where after has no entry, those stamped
// after baseline (Unix ms). Seqs in skip[conv] are left out (they are being
// redelivered). Visibility is the history's: from the user's join point,
// and for a former member up to their leave event, nothing after it.
//
// Missed records in after the position it started from in every
// conversation it resolved, so that a later call with the same map (raised
// past what was delivered) does not search for the baseline again.
func (s *Service) Missed(ctx context.Context, uid string, baseline int64, after map[string]int64,
	skip map[string]map[int64]bool, limit int) ([]ReplayEvent, error) {
	convs, err := s.replayConvs(ctx, uid, baseline)
	if err != nil {
		return nil, err
	}
	var out []ReplayEvent
	for i := range convs {
		c := &convs[i]
		end := c.LastSeq
		if !c.Active {
			end = c.ReadSeq // a former member: up to the leave event
		}
		start, ok := after[c.ID]
		if !ok {
			if start, err = s.seqAt(ctx, c, end, baseline); err != nil {
				return nil, err
			}
			after[c.ID] = start
		}
		start = max(start, c.MinSeq)
		topic := UserTopic(uid)
		if c.Kind == store.KindGroup {
			t, err := ConvTarget(c.ID, uid)
			if err != nil {
				continue
			}
			topic = GroupTopic(t.ID)
		}
		for start < end && len(out) < limit {
			ms, err := s.st.Messages(ctx, c.ID, store.MsgQuery{After: start, Before: end + 1, Limit: replayPage})
			if err != nil {
				return nil, AsError(err)
			}
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				start = m.Seq
				if skip[c.ID][m.Seq] {
					continue
				}
				out = append(out, ReplayEvent{Topic: topic, Conv: c.ID, Seq: m.Seq, Payload: mustJSON(NewMsgEvent(m))})
				if len(out) == limit {
					break
				}
			}
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// replayConvs lists uid's conversations changed since a little before
// baseline, the least recently changed first.
func (s *Service) replayConvs(ctx context.Context, uid string, baseline int64) ([]store.Conversation, error) {
	var all []store.Conversation
	q := store.ConvQuery{UpdatedAfter: max(baseline-baselineSlack, 0), Limit: MaxConvPage}
	for {
		cs, err := s.st.Conversations(ctx, uid, q)
		if err != nil {
			return nil, AsError(err)
		}
		all = append(all, cs...)
		if len(cs) < q.Limit {
			break
		}
		last := cs[len(cs)-1]
		q.After = &store.ConvCursor{Pinned: last.Pinned, UpdatedAt: last.UpdatedAt, ID: last.ID}
	}
	slices.SortStableFunc(all, func(a, b store.Conversation) int {
		return cmp.Or(cmp.Compare(a.UpdatedAt, b.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
	return all, nil
}

// seqAt finds the last seq of c (at most end) stamped at or before
// baseline, reading backward from end: the replay of a conversation the
// session has no position in starts after it.
func (s *Service) seqAt(ctx context.Context, c *store.Conversation, end, baseline int64) (int64, error) {
	before := end + 1
	for before > c.MinSeq+1 {
		ms, err := s.st.Messages(ctx, c.ID, store.MsgQuery{After: c.MinSeq, Before: before, Limit: replayPage, Desc: true})
		if err != nil {
			return 0, AsError(err)
		}
		for _, m := range ms {
			if m.TS <= baseline {
				return m.Seq, nil
			}
			before = m.Seq
		}
		if len(ms) < replayPage {
			break
		}
	}
	return c.MinSeq, nil
}
