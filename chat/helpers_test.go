package chat_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/store"
)

// addUsers creates a user for each of ids in st.
func addUsers(t testing.TB, st store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := st.UpsertUser(context.Background(), &store.User{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
}

// startService starts a chat service on st with the default chat
// configuration, discarded logs and the given cache TTL (0: the default),
// closed when the test ends.
func startService(t testing.TB, st store.Store, cacheTTL time.Duration) *chat.Service {
	t.Helper()
	svc := chat.New(chat.Options{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: config.Default().Chat, CacheTTL: cacheTTL})
	svc.Start()
	t.Cleanup(svc.Close)
	return svc
}
