// Package queue holds the one batching step that mqim's background workers
// share (the group committer, the push dispatcher).
package queue

// Drain appends to batch whatever is already waiting on ch, without
// waiting, until batch holds max items or ch is empty, and returns it.
func Drain[T any](ch <-chan T, batch []T, max int) []T {
	for len(batch) < max {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}
