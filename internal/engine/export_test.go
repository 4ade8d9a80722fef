package engine

import "context"

// RunBatch runs one batch of m on kv with a fresh executor (for tests of
// batches that no Session builds, such as several sequences at once).
func RunBatch(ctx context.Context, m *Model, b *Batch, kv KVStore) ([]float32, error) {
	return newExecutor(m.k).run(ctx, m.graph(b), kv)
}
