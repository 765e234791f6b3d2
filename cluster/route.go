package cluster

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/nats-io/nats.go"
)

// A conversation's owner is the node that commits its group messages
// (chat/route.go says why). Every node picks it the same way from the nodes
// it hears (rendezvous hashing over their ids: the one whose hash with the
// conversation is highest), so owners move only when a node comes or goes,
// and then only the dead or new node's share. While the nodes disagree for
// a moment, two may commit one conversation; the store's unique key still
// keeps its seqs gap-free.

// routeTimeout bounds the wait for an owner's answer (the commit's own
// timeout is chat.commit_timeout, 5 s by default).
const routeTimeout = 10 * time.Second

// routeWorkers bounds the commits this node runs at once for others.
const routeWorkers = 4096

// owner is the node that commits conv.
func (n *Node) owner(conv string) string {
	best, bestHash := n.id, ownerHash(n.id, conv)
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	for id := range n.peers.nodes {
		if h := ownerHash(id, conv); h > bestHash || (h == bestHash && id > best) {
			best, bestHash = id, h
		}
	}
	return best
}

func ownerHash(node, conv string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(conv))
	return h.Sum64()
}

// Route hands req to conv's owner and returns its answer; local is true
// when this node is the owner, or the owner cannot be reached (gone, or
// NATS is), so the caller commits itself.
func (n *Node) Route(ctx context.Context, conv string, req []byte) ([]byte, bool, error) {
	owner := n.owner(conv)
	if owner == n.id || !n.nc.IsConnected() {
		return nil, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, routeTimeout)
	defer cancel()
	m, err := n.nc.RequestWithContext(ctx, n.subject("commit."+owner), req)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, true, nil // the owner is gone: the store arbitrates
	}
	if err != nil {
		return nil, false, err
	}
	n.routed.Add(1)
	return m.Data, false, nil
}

// serveCommits commits what other nodes route to this one, each request
// on a goroutine of its own (a commit waits for the group commit), at
// most routeWorkers at once.
func (n *Node) serveCommits() error {
	sem := make(chan struct{}, routeWorkers)
	sub, err := n.nc.Subscribe(n.subject("commit."+n.id), func(m *nats.Msg) {
		select {
		case sem <- struct{}{}:
		case <-n.stop:
			return
		}
		go func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
			defer cancel()
			_ = m.Respond(n.svc.CommitRouted(ctx, m.Data))
		}()
	})
	if err != nil {
		return err
	}
	_ = sub.SetPendingLimits(-1, -1)
	return nil
}
