package chat

import (
	"context"
	"encoding/json"

	"github.com/mqim/mqim/store"
)

// Group messages in a cluster are committed by the node that owns their
// conversation (Peers.Route picks it): a node allocates seqs from memory,
// so nodes committing to one busy group at once would take the same seqs,
// and all but one would have to retry (the unique (conv, seq) key
// arbitrates; docs/cluster.md). The node a message arrives at checks and
// moderates it as always, then hands the write to the owner, which
// commits it in its group commit and delivers it; the answer comes back
// to the sender's node. When no owner answers (it is gone, or NATS is), the
// node commits itself and the unique key keeps the seqs right. 1:1
// conversations are committed where they arrive: two people rarely send
// at the same instant from two nodes, and a conflict then costs one retry.

// routed is a group message handed to its conversation's owner.
type routed struct {
	Msg    store.Message
	Reader string
}

// routedResult is the owner's answer: the stored message, or the refusal.
type routedResult struct {
	Msg *store.Message `json:",omitempty"`
	Dup bool           `json:",omitempty"`
	Err *Error         `json:",omitempty"`
}

// route hands a group write to its owner, if that is another node; done
// is false when this node commits it itself.
func (s *Service) route(ctx context.Context, w *store.Write) (res *SendResult, done bool, err error) {
	if s.peers == nil || w.Kind != store.KindGroup {
		return nil, false, nil
	}
	req, err := json.Marshal(routed{Msg: *w.Msg, Reader: w.Reader})
	if err != nil {
		return nil, true, err
	}
	resp, local, err := s.peers.Route(ctx, w.Msg.Conv, req)
	if local {
		return nil, false, nil
	}
	if err != nil {
		// The owner may have committed it: a resend with the same cid
		// finds it there.
		return nil, true, errorf(CodeUnavailable, "the conversation's node did not answer, try again")
	}
	var r routedResult
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, true, errorf(CodeUnavailable, "the conversation's node answered badly, try again")
	}
	if r.Err != nil {
		return nil, true, r.Err
	}
	if r.Msg == nil {
		return nil, true, errorf(CodeUnavailable, "the conversation's node answered badly, try again")
	}
	return &SendResult{Msg: r.Msg, Duplicate: r.Dup}, true, nil
}

// CommitRouted commits a group message another node checked and handed
// to this one, the owner of its conversation (Peers.Route there), and
// returns the answer for that node. It blocks until the commit, like Send.
func (s *Service) CommitRouted(ctx context.Context, req []byte) []byte {
	answer := func(r routedResult) []byte {
		out, _ := json.Marshal(r)
		return out
	}
	var r routed
	if err := json.Unmarshal(req, &r); err != nil || r.Msg.To == "" || r.Msg.Conv != GroupConv(r.Msg.To) {
		return answer(routedResult{Err: errorf(CodeInvalid, "bad routed message")})
	}
	g, err := s.groups.get(ctx, r.Msg.To)
	if err != nil {
		return answer(routedResult{Err: AsError(err)})
	}
	m := r.Msg
	res, err := s.commitMessage(ctx, &store.Write{Msg: &m, Kind: store.KindGroup, Reader: r.Reader},
		&CommitInfo{Group: &g.group, Members: g.members})
	if err != nil {
		return answer(routedResult{Err: AsError(err)})
	}
	return answer(routedResult{Msg: res.Msg, Dup: res.Duplicate})
}
