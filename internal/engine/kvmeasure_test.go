package engine_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// TestKVMemoryMeasure measures the KV memory of 8 sessions of 2048
// positions on the model named by REALM_KV_MODEL (e.g. the synthetic
// TinyLlama-1.1B; skipped without it) against what 2 sessions took with
// the former cache (f32, the whole context reserved at open). Memory
// does not depend on the arithmetic, so the engine runs over kernels
// that compute nothing; the pool's block accounting is the real one.
func TestKVMemoryMeasure(t *testing.T) {
	path := os.Getenv("REALM_KV_MODEL")
	if path == "" {
		t.Skip("REALM_KV_MODEL not set")
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const nCtx = 2048
	for _, sc := range []struct {
		name         string
		shared, own  int // tokens per session: a common prefix, then its own
		wantAllToFit bool
	}{
		{"8 × (1280 shared + 768 own) = 8 × 2048", 1280, 768, true},
		{"8 × 1024 own (half-full sessions)", 0, 1024, true},
		{"8 × 2048 own (full, nothing shared)", 0, 2048, false},
	} {
		m, err := engine.NewModel(f.File, f.TensorData, idleKernels{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		hp := m.HP
		before := uint64(2*4*hp.NLayer*nCtx*hp.KVDim()) * 2 // 2 sessions, f32, full context
		p := m.KVPool()
		p.SetBudget(before)
		ctx := context.Background()
		shared := make([]int32, sc.shared)
		for i := range shared {
			shared[i] = int32(1 + i%1000)
		}
		fit := 0
		var ferr error
		for s := 0; s < 8; s++ {
			sess, err := m.NewSession(nCtx)
			if err != nil {
				t.Fatal(err)
			}
			toks := append([]int32(nil), shared...)
			for i := 0; i < sc.own; i++ {
				toks = append(toks, int32(1+(s*7919+i*31)%hp.NVocab))
			}
			if _, ferr = sess.Decode(ctx, toks, false); ferr != nil {
				break
			}
			fit++
		}
		st := p.Stats()
		t.Logf("%s: %d of 8 sessions fit; pool %d blocks = %.1f MB allocated (budget %.1f MB = 2 former f32 sessions of %d); hits %d; last error: %v",
			sc.name, fit, st.Allocated, float64(uint64(st.Allocated)*st.BlockBytes)/1e6, float64(before)/1e6, nCtx, st.Hits, ferr)
		if (fit == 8) != sc.wantAllToFit {
			t.Errorf("%s: %d sessions fit", sc.name, fit)
		}
		if fit < 8 && !errors.Is(ferr, backends.ErrOutOfMemory) {
			t.Errorf("%s: the session that did not fit failed with %v, want ErrOutOfMemory", sc.name, ferr)
		}
	}
}
