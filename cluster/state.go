package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// WorkerState is what a worker publishes under its key in StateBucket.
type WorkerState struct {
	// ID is the worker's id (its key).
	ID string `json:"id"`
	// Backend and Device name what computes there.
	Backend string `json:"backend"`
	Device  string `json:"device,omitempty"`
	// Loaded are the models in memory now; Loadable every name the
	// worker can serve from its disk.
	Loaded   []string `json:"loaded"`
	Loadable []string `json:"loadable"`
	// Running and Queued count the requests the worker holds.
	Running int `json:"running"`
	Queued  int `json:"queued"`
	// MaxConcurrent is how many requests run at once (0: unknown).
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// FreeKVBytes is free KV-cache memory (-1: unknown).
	FreeKVBytes int64 `json:"free_kv_bytes"`
	// Prefixes are hashes (PrefixHashes) of the conversations it served
	// last, newest first, at most MaxPrefixes.
	Prefixes []string `json:"prefixes,omitempty"`
	// Draining is set once the worker stopped taking requests.
	Draining bool `json:"draining,omitempty"`
	// Served counts the requests it finished.
	Served uint64 `json:"served"`
}

// Load is the number of requests the worker holds.
func (s *WorkerState) Load() int { return s.Running + s.Queued }

// Serves reports whether the worker can serve model.
func (s *WorkerState) Serves(model string) bool {
	return slices.Contains(s.Loaded, model) || slices.Contains(s.Loadable, model)
}

// MaxPrefixes bounds WorkerState.Prefixes.
const MaxPrefixes = 64

// promptHead is the part of an OpenAI completion request routing reads.
type promptHead struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt json.RawMessage `json:"prompt"`
	Stream bool            `json:"stream"`
}

// prefixBlock is the granularity of a text prompt's prefix hashes.
const prefixBlock = 256

// PrefixHashes returns the hashes of a request's prefixes, shortest
// first: for chat, of the first k messages for every k (so the second
// turn of a conversation shares its first turn's hashes, and requests
// with one system prompt share the first); for a text prompt, of every
// whole prefixBlock bytes. Each hash also covers the model name.
func PrefixHashes(model string, h *promptHead) []string {
	var out []string
	sum := sha256.New()
	sum.Write([]byte(model))
	sum.Write([]byte{0})
	add := func() {
		b := sum.Sum(nil)
		out = append(out, hex.EncodeToString(b[:8]))
	}
	if len(h.Messages) > 0 {
		for _, m := range h.Messages {
			sum.Write([]byte(m.Role))
			sum.Write([]byte{0})
			sum.Write(m.Content)
			sum.Write([]byte{0})
			add()
		}
		return out
	}
	var p string
	if json.Unmarshal(h.Prompt, &p) != nil {
		var ps []string
		if json.Unmarshal(h.Prompt, &ps) != nil || len(ps) != 1 {
			return nil
		}
		p = ps[0]
	}
	for i := prefixBlock; i <= len(p); i += prefixBlock {
		sum.Write([]byte(p[i-prefixBlock : i]))
		add()
	}
	return out
}

// parseHead reads the routing fields of a request body (nil when the
// body is not a JSON object: the worker then answers the error).
func parseHead(body []byte) *promptHead {
	var h promptHead
	if json.Unmarshal(body, &h) != nil {
		return nil
	}
	return &h
}

// recentPrefixes keeps the newest distinct hashes, newest first.
type recentPrefixes struct{ list []string }

func (r *recentPrefixes) add(hs []string) {
	for _, h := range hs {
		if i := slices.Index(r.list, h); i >= 0 {
			r.list = slices.Delete(r.list, i, i+1)
		}
		r.list = slices.Insert(r.list, 0, h)
	}
	if len(r.list) > MaxPrefixes {
		r.list = r.list[:MaxPrefixes]
	}
}

func (r *recentPrefixes) snapshot() []string { return slices.Clone(r.list) }
