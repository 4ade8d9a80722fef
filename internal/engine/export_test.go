package engine

import "context"

// RunBatch runs one batch of m on kv with a fresh executor (for tests of
// batches that no Session builds, such as several sequences at once).
func RunBatch(ctx context.Context, m *Model, b *Batch, kv KVStore) ([]float32, error) {
	return newExecutor(m.k).run(ctx, m.graph(b), kv)
}

// Reserve is Session.reserve, for tests that run batches themselves.
func Reserve(s *Session, tokens []int32, all bool) (start, skip int, err error) {
	return s.reserve(tokens, all)
}
