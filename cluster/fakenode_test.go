package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// fakeNode is a test backend: an OpenAI handler that emits tokens at a
// fixed rate per node (one token per period across all its streams, like
// a device with a fixed throughput) using almost no CPU. Each token
// takes the next free slot of the node's schedule; a stream woken late
// by a busy machine does not lose its slot (up to 50ms of catch-up), so
// the rate measured is the system's, not the scheduler's jitter. Each
// token is "<id>:<i>:<unix-nanos> " so tests see which worker served and
// when the token left it.
type fakeNode struct {
	id               string
	loaded, loadable []string
	prefill          time.Duration
	period           time.Duration
	slots            chan struct{} // MaxConcurrent
	emitted          atomic.Int64

	mu   sync.Mutex
	next time.Time
}

func newFakeNode(_ context.Context, id string, loaded, loadable []string, rate int, maxConc int, prefill time.Duration) *fakeNode {
	return &fakeNode{id: id, loaded: loaded, loadable: loadable, prefill: prefill,
		period: time.Second / time.Duration(rate), slots: make(chan struct{}, maxConc)}
}

// slot waits for the next token slot of the node.
func (n *fakeNode) slot(ctx context.Context) error {
	n.mu.Lock()
	now := time.Now()
	if floor := now.Add(-50 * time.Millisecond); n.next.Before(floor) {
		n.next = floor
	}
	n.next = n.next.Add(n.period)
	at := n.next
	n.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *fakeNode) State(context.Context) NodeState {
	return NodeState{Backend: "fake", Loaded: n.loaded, Loadable: n.loadable, MaxConcurrent: cap(n.slots), FreeKVBytes: -1}
}

func (n *fakeNode) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", n.complete)
	mux.HandleFunc("POST /v1/completions", n.complete)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# HELP realm_fake_tokens_total Tokens emitted.\n# TYPE realm_fake_tokens_total counter\nrealm_fake_tokens_total %d\n", n.emitted.Load())
	})
	return mux
}

func (n *fakeNode) complete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		Stream    bool   `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeAPIError(w, 400, "invalid_request_error", "", err.Error())
		return
	}
	if !slices.Contains(n.loadable, req.Model) && !slices.Contains(n.loaded, req.Model) {
		writeAPIError(w, 404, "invalid_request_error", "model_not_found", "no such model "+req.Model)
		return
	}
	ctx := r.Context()
	select {
	case n.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-n.slots }()
	select {
	case <-time.After(n.prefill):
	case <-ctx.Done():
		return
	}
	rc := http.NewResponseController(w)
	var text []byte
	for i := range req.MaxTokens {
		if n.slot(ctx) != nil {
			return
		}
		n.emitted.Add(1)
		tok := fmt.Sprintf("%s:%d:%d ", n.id, i, time.Now().UnixNano())
		if !req.Stream {
			text = append(text, tok...)
			continue
		}
		if i == 0 {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
		}
		b, _ := json.Marshal(map[string]any{"object": "chat.completion.chunk", "choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": tok}}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		rc.Flush()
	}
	if req.Stream {
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "chat.completion", "choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": string(text)}, "finish_reason": "length"}}})
}
