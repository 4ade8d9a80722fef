package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// twoSessions is a KVStore over several sessions, sequence i = session i.
type twoSessions []*engine.Session

func (s twoSessions) KV(seq int32, l int) (engine.KVView, error) {
	if int(seq) >= len(s) {
		return engine.KVView{}, fmt.Errorf("no sequence %d", seq)
	}
	return s[seq].KV(0, l)
}

// TestMultiSequenceBatch runs two sequences of different lengths in one
// graph (rows of sequence 0, then of sequence 1, each with its own
// positions and KV view) and checks that each sequence's logits are
// bit-identical to decoding it alone: the batch carries what a
// cross-session scheduler needs.
func TestMultiSequenceBatch(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama", "qwen3moe", "gemma2", "phi3"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(root, "testdata", "arch", name+".gguf")
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := engine.NewModel(f.File, f.TensorData, reference.New(), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			a := []int32{1, 5, 9, 13, 17, 21, 25, 29}
			b := []int32{2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22}
			// Alone: a prefix, then the rest of each.
			alone := func(toks []int32, split int) []float32 {
				s, _ := m.NewSession(64)
				if _, err := s.Decode(ctx, toks[:split], false); err != nil {
					t.Fatal(err)
				}
				out, err := s.Decode(ctx, toks[split:], true)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			wantA, wantB := alone(a, 3), alone(b, 5)
			// Together: the same prefixes alone, then one batch.
			sa, _ := m.NewSession(64)
			sb, _ := m.NewSession(64)
			sa.Decode(ctx, a[:3], false)
			sb.Decode(ctx, b[:5], false)
			for _, r := range []struct {
				s    *engine.Session
				toks []int32
			}{{sa, a[3:]}, {sb, b[5:]}} {
				if _, _, err := engine.Reserve(r.s, r.toks, true); err != nil {
					t.Fatal(err)
				}
			}
			batch := &engine.Batch{All: true, NCtx: 64}
			for i, tok := range a[3:] {
				batch.Tokens = append(batch.Tokens, tok)
				batch.Pos = append(batch.Pos, int32(3+i))
				batch.Seq = append(batch.Seq, 0)
			}
			for i, tok := range b[5:] {
				batch.Tokens = append(batch.Tokens, tok)
				batch.Pos = append(batch.Pos, int32(5+i))
				batch.Seq = append(batch.Seq, 1)
			}
			got, err := engine.RunBatch(ctx, m, batch, twoSessions{sa, sb})
			if err != nil {
				t.Fatal(err)
			}
			nv := m.HP.NVocab
			na := len(a) - 3
			if !slices.Equal(got[:na*nv], wantA) || !slices.Equal(got[na*nv:], wantB) {
				t.Fatal("logits of the merged batch differ from each sequence decoded alone")
			}
		})
	}
}
