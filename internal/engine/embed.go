package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/realmrt/realm/backends"
)

// maxEmbedRows caps the rows of one embedding forward pass; a request
// with more tokens runs in several passes of whole sequences.
const maxEmbedRows = 4096

// maxEmbedInputs caps the sequences of one Embed call.
const maxEmbedInputs = 1 << 16

// pooler is a builder whose graph pools sequences into embeddings.
type pooler interface {
	pooling() string
}

// Pooling is how the model's graph pools each sequence ("mean", "cls",
// "last"), or "" for a model that produces logits.
func (m *Model) Pooling() string {
	if p, ok := m.b.(pooler); ok {
		return p.pooling()
	}
	return ""
}

// Embeddings runs the model over inputs (each a sequence of token ids
// of at most the training context) and returns one pooled vector per
// input, scaled to unit length when normalize is set. Sequences are
// batched into forward passes of up to maxEmbedRows rows.
func (m *Model) Embeddings(ctx context.Context, inputs [][]int32, normalize bool) ([][]float32, error) {
	if m.Pooling() == "" {
		return nil, fmt.Errorf("%w: %s is not an embedding model (its graph makes logits, not pooled vectors)", backends.ErrUnsupported, m.HP.Arch)
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: no inputs to embed", backends.ErrInvalidArgument)
	}
	if len(inputs) > maxEmbedInputs {
		return nil, fmt.Errorf("%w: %d inputs (at most %d)", backends.ErrInvalidArgument, len(inputs), maxEmbedInputs)
	}
	for i, in := range inputs {
		if len(in) == 0 {
			return nil, fmt.Errorf("%w: input %d has no tokens", backends.ErrInvalidArgument, i)
		}
		if len(in) > m.HP.NCtxTrain {
			return nil, fmt.Errorf("%w: input %d has %d tokens, more than the model's context of %d", backends.ErrContextFull, i, len(in), m.HP.NCtxTrain)
		}
		if err := CheckBatch(in, m.HP.NVocab, 0, m.HP.NCtxTrain); err != nil {
			return nil, fmt.Errorf("input %d: %w", i, err)
		}
	}
	ex := newExecutor(m.k)
	out := make([][]float32, 0, len(inputs))
	for i0 := 0; i0 < len(inputs); {
		b := &Batch{All: true}
		i1 := i0
		for i1 < len(inputs) && (i1 == i0 || len(b.Tokens)+len(inputs[i1]) <= maxEmbedRows) {
			for p, t := range inputs[i1] {
				b.Tokens = append(b.Tokens, t)
				b.Pos = append(b.Pos, int32(p))
				b.Seq = append(b.Seq, int32(i1-i0))
			}
			i1++
		}
		b.NCtx = m.HP.NCtxTrain
		m.passes.RLock()
		res, err := ex.run(ctx, m.graph(b), nil)
		m.passes.RUnlock()
		m.passEnded()
		if err != nil {
			return nil, err
		}
		d := m.HP.NEmbd
		if len(res) != (i1-i0)*d {
			return nil, fmt.Errorf("engine: embedding pass returned %d values for %d inputs of %d", len(res), i1-i0, d)
		}
		for j := 0; j < i1-i0; j++ {
			v := make([]float32, d)
			copy(v, res[j*d:(j+1)*d])
			if normalize {
				normalizeL2(v)
			}
			out = append(out, v)
		}
		i0 = i1
	}
	return out, nil
}

// normalizeL2 scales v to unit Euclidean length (as llama.cpp's
// common_embd_normalize with norm 2); a zero vector stays zero.
func normalizeL2(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	n := 1 / math.Sqrt(s)
	for i := range v {
		v[i] = float32(float64(v[i]) * n)
	}
}

// Embed implements backends.Backend on the model's pooled graph.
func (b *backend) Embed(ctx context.Context, req backends.EmbedRequest) (res *backends.EmbedResult, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lm, release, err := b.reg.Model(req.Model)
	if err != nil {
		return nil, err
	}
	defer release()
	defer recoverKernel(&err)
	vs, err := lm.m.Embeddings(ctx, req.Inputs, req.Normalize)
	if err != nil {
		return nil, fmt.Errorf("engine: embed: %w", err)
	}
	return &backends.EmbedResult{NEmbd: lm.m.HP.NEmbd, Embeddings: vs}, nil
}
