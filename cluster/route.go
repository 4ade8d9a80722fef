package cluster

import (
	"slices"
)

// DefaultPileGuard is how many requests more than the least loaded
// candidate a worker may hold and still win by model or prefix.
const DefaultPileGuard = 4

// pick chooses the worker for a request for model whose prefix hashes
// (PrefixHashes, shortest first) are hashes, among members not in
// exclude: those that can serve the model; of them, those that have it
// loaded; of them, the one holding the longest prefix; else the least
// loaded (ties broken by rr). A worker holding guard or more requests
// over the least loaded candidate loses its model and prefix advantage.
// load gives the requests a worker holds. It returns nil when no member
// can serve the model.
func pick(members []*WorkerState, load func(*WorkerState) int, model string, hashes []string, exclude map[string]bool, guard int, rr uint64) *WorkerState {
	var cands []*WorkerState
	for _, m := range members {
		if !m.Draining && !exclude[m.ID] && m.Serves(model) {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b *WorkerState) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	minLoad := load(cands[0])
	for _, c := range cands[1:] {
		minLoad = min(minLoad, load(c))
	}
	ok := func(c *WorkerState) bool { return load(c) < minLoad+guard }
	pool := cands
	var loaded []*WorkerState
	for _, c := range cands {
		if slices.Contains(c.Loaded, model) && ok(c) {
			loaded = append(loaded, c)
		}
	}
	if len(loaded) > 0 {
		pool = loaded
	}
	for k := len(hashes) - 1; k >= 0; k-- {
		for _, c := range pool {
			if ok(c) && slices.Contains(c.Prefixes, hashes[k]) {
				return c
			}
		}
	}
	best := -1
	n := len(pool)
	for i := range n {
		c := pool[(int(rr%uint64(n))+i)%n]
		if best < 0 || load(c) < load(pool[best]) {
			best = (int(rr%uint64(n)) + i) % n
		}
	}
	return pool[best]
}
