package engine

import (
	"context"

	"github.com/realmrt/realm/backends"
)

// RunBatch runs one batch of m on kv with a fresh executor (for tests of
// batches that no Session builds, such as several sequences at once).
func RunBatch(ctx context.Context, m *Model, b *Batch, kv KVStore) ([]float32, error) {
	return newExecutor(m.k).run(ctx, m.graph(b), kv)
}

// SchedStats sums the scheduler counters of b's loaded models: forward
// passes, the tokens they held, and the passes that merged sessions.
func SchedStats(b any) (steps, rows, merged int64) {
	b.(*backend).reg.Range(func(_ backends.ModelID, lm *loadedModel) {
		s, r, m := lm.sched.stats()
		steps, rows, merged = steps+s, rows+r, merged+m
	}, nil)
	return
}

// Reserve is Session.reserve, for tests that run batches themselves.
func Reserve(s *Session, tokens []int32, all bool) (start, skip int, err error) {
	return s.reserve(tokens, all)
}

// TallExecutors counts the loaded models of b whose scheduler holds the
// executor of its tall steps.
func TallExecutors(b any) int {
	n := 0
	b.(*backend).reg.Range(func(_ backends.ModelID, lm *loadedModel) {
		lm.sched.bigMu.Lock()
		if lm.sched.big != nil {
			n++
		}
		lm.sched.bigMu.Unlock()
	}, nil)
	return n
}
