package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// storiesPath returns the path of the F32 stories260K model.
func storiesPath(t *testing.T) string {
	t.Helper()
	p, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newStories returns a reference backend with stories260K loaded.
// storiesModel maps stories260K for the rest of the test and builds its
// Model over kernels k.
func storiesModel(t *testing.T, k engine.Kernels) *engine.Model {
	t.Helper()
	f, err := gguf.Open(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := engine.NewModel(f.File, f.TensorData, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newStories(t *testing.T) (backends.Backend, *backends.ModelInfo) {
	t.Helper()
	b := engine.NewBackend(reference.New(), engine.Options{Name: "reference", Version: "test"})
	mi, err := b.LoadModel(context.Background(), backends.LoadRequest{Path: storiesPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.UnloadModel(context.Background(), mi.ID) })
	return b, mi
}

func TestModelInfo(t *testing.T) {
	_, mi := newStories(t)
	want := backends.ModelInfo{ID: mi.ID, Arch: "llama", NCtxTrain: mi.NCtxTrain, NVocab: 512, NEmbd: 64, NLayer: 5, NHead: 8, NHeadKV: 4, NFF: 172}
	got := *mi
	got.TensorTypes, got.TensorShapes, got.WeightBytes, got.ExtraBytes = nil, nil, 0, 0
	if got.Arch != want.Arch || got.NVocab != want.NVocab || got.NEmbd != want.NEmbd || got.NLayer != want.NLayer ||
		got.NHead != want.NHead || got.NHeadKV != want.NHeadKV || got.NFF != want.NFF || got.NCtxTrain <= 0 {
		t.Errorf("ModelInfo = %+v, want %+v", got, want)
	}
	// 5 layers × 9 tensors + token_embd + output_norm (+ output when untied).
	n := 0
	for _, c := range mi.TensorTypes {
		n += c
	}
	if mi.TensorTypes["F32"] != n || n < 47 {
		t.Errorf("TensorTypes = %v", mi.TensorTypes)
	}
	if mi.WeightBytes < 1_000_000 || mi.WeightBytes > 1_200_000 {
		t.Errorf("WeightBytes = %d, want about 1.1 MB", mi.WeightBytes)
	}
	if s := mi.TensorShapes["blk.0.attn_k.weight"]; !slices.Equal(s, []int{64, 32}) {
		t.Errorf("attn_k shape %v, want [64 32]", s)
	}
}

func TestInfo(t *testing.T) {
	b := engine.NewBackend(reference.New(), engine.Options{Name: "reference", Version: "1.2", Threads: 1})
	info, err := b.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "reference" || info.Version != "1.2" || info.Threads != 1 {
		t.Errorf("Info = %+v", info)
	}
	for _, ty := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0} {
		if !slices.Contains(info.Types, ty) {
			t.Errorf("Types %v lacks %v", info.Types, ty)
		}
	}
	if slices.Contains(info.Types, gguf.TypeQ8_K) {
		t.Errorf("Types %v lists the activation-only Q8_K", info.Types)
	}
	want := engine.InfoOps(backends.Ops(), engine.SupportedOps(reference.New()), engine.Architectures())
	if !slices.Equal(info.Ops, want) || !slices.Equal(info.Ops[:10], backends.Ops()) ||
		!slices.Contains(info.Ops, "graph.rope_ext") || !slices.Contains(info.Ops, "graph.attention_window") ||
		!slices.Contains(info.Ops, "arch.qwen2") {
		t.Errorf("Ops = %v", info.Ops)
	}
}

// TestGreedyGeneration samples 64 tokens greedily inside Decode and
// compares them with llama.cpp's.
func TestGreedyGeneration(t *testing.T) {
	out, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	b, mi := newStories(t)
	ctx := context.Background()
	sid, err := b.OpenSession(ctx, mi.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	toks := out.PromptIDs
	var got []int32
	for range out.GenIDs {
		res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantSample})
		if err != nil {
			t.Fatal(err)
		}
		if res.Logits != nil {
			t.Fatal("WantSample returned logits")
		}
		got = append(got, res.Token)
		toks = []int32{res.Token}
		if res.NPast != len(out.PromptIDs)+len(got)-1 {
			t.Fatalf("NPast = %d after %d tokens", res.NPast, len(got))
		}
	}
	if !slices.Equal(got, out.GenIDs) {
		t.Errorf("generated %v\nwant      %v", got, out.GenIDs)
	}
}

// TestBatchEqualsSequential checks that a batched prefill gives exactly
// the logits of feeding the same tokens one at a time, that Truncate
// rewinds exactly, and that all-position logits agree with both.
func TestBatchEqualsSequential(t *testing.T) {
	m := storiesModel(t, reference.New())
	ctx := context.Background()
	toks := []int32{1, 403, 407, 261, 378, 432, 383}
	batch, _ := m.NewSession(16)
	all, err := batch.Decode(ctx, toks, true)
	if err != nil {
		t.Fatal(err)
	}
	nv := m.HP.NVocab
	if len(all) != len(toks)*nv {
		t.Fatalf("all logits: %d values, want %d", len(all), len(toks)*nv)
	}
	seq, _ := m.NewSession(16)
	for i, tok := range toks {
		l, err := seq.Decode(ctx, []int32{tok}, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l, all[i*nv:(i+1)*nv]) {
			t.Fatalf("position %d: sequential logits differ from batched", i)
		}
	}
	// Rewind to 3 tokens and redo the rest as one batch: last-position logits.
	if err := seq.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if seq.Len() != 3 || !slices.Equal(seq.Tokens(), toks[:3]) {
		t.Fatalf("after Truncate(3): len %d tokens %v", seq.Len(), seq.Tokens())
	}
	l, err := seq.Decode(ctx, toks[3:], false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l, all[(len(toks)-1)*nv:]) {
		t.Error("logits after Truncate and re-decode differ")
	}
	if err := seq.Truncate(8); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Errorf("Truncate past the end: %v", err)
	}
}

func TestSessionErrors(t *testing.T) {
	b, mi := newStories(t)
	ctx := context.Background()
	if _, err := b.OpenSession(ctx, mi.ID+100, 8); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("OpenSession(unknown model) = %v", err)
	}
	if _, err := b.OpenSession(ctx, mi.ID, mi.NCtxTrain+1); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Errorf("OpenSession(n_ctx_train+1) = %v", err)
	}
	sid, err := b.OpenSession(ctx, mi.ID, 4)
	if err != nil {
		t.Fatal(err)
	}
	dec := func(toks ...int32) error {
		_, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantLogits})
		return err
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"no tokens", dec(), backends.ErrInvalidArgument},
		{"negative id", dec(1, -1), backends.ErrInvalidArgument},
		{"id = n_vocab", dec(512), backends.ErrInvalidArgument},
		{"over context", dec(1, 2, 3, 4, 5), backends.ErrContextFull},
		{"fill", dec(1, 2, 3), nil},
		{"one too many", dec(4, 5), backends.ErrContextFull},
		{"last one", dec(4), nil},
		{"full", dec(5), backends.ErrContextFull},
		{"bad want", func() error {
			_, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}, Want: 7})
			return err
		}(), backends.ErrInvalidArgument},
		{"truncate negative", b.Truncate(ctx, sid, -1), backends.ErrInvalidArgument},
		{"truncate past end", b.Truncate(ctx, sid, 5), backends.ErrInvalidArgument},
		{"truncate", b.Truncate(ctx, sid, 2), nil},
		{"decode after truncate", dec(3, 4), nil},
		{"unknown session decode", func() error {
			_, err := b.Decode(ctx, backends.DecodeRequest{Session: sid + 100, Tokens: []int32{1}})
			return err
		}(), backends.ErrNotFound},
		{"unknown session truncate", b.Truncate(ctx, sid+100, 0), backends.ErrNotFound},
		{"close", b.CloseSession(ctx, sid), nil},
		{"close twice", b.CloseSession(ctx, sid), backends.ErrNotFound},
		{"decode closed", dec(1), backends.ErrNotFound},
		{"unload unknown", b.UnloadModel(ctx, mi.ID+100), backends.ErrNotFound},
	}
	for _, tc := range tests {
		if tc.want == nil && tc.err != nil || tc.want != nil && !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

func TestUnloadClosesSessions(t *testing.T) {
	b := engine.NewBackend(reference.New(), engine.Options{})
	ctx := context.Background()
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: storiesPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := b.OpenSession(ctx, mi.ID, 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UnloadModel(ctx, mi.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Decode after unload = %v", err)
	}
	if err := b.CloseSession(ctx, sid); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("CloseSession after unload = %v", err)
	}
	if err := b.UnloadModel(ctx, mi.ID); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("second UnloadModel = %v", err)
	}
}

func TestCancel(t *testing.T) {
	b, mi := newStories(t)
	ctx, cancel := context.WithCancel(context.Background())
	sid, err := b.OpenSession(context.Background(), mi.ID, 8)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1, 2}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Decode with cancelled ctx = %v", err)
	}
	res, err := b.Decode(context.Background(), backends.DecodeRequest{Session: sid, Tokens: []int32{1}})
	if err != nil || res.NPast != 1 {
		t.Fatalf("after a cancelled decode: %v, NPast %v", err, res)
	}
}

// TestConcurrentSessions decodes several sessions of one model from
// different goroutines and checks each gets the sequential answer.
func TestConcurrentSessions(t *testing.T) {
	b, mi := newStories(t)
	ctx := context.Background()
	run := func(seed uint64) ([]int32, error) {
		sid, err := b.OpenSession(ctx, mi.ID, 64)
		if err != nil {
			return nil, err
		}
		defer b.CloseSession(ctx, sid)
		toks := []int32{1, 403, 407}
		var out []int32
		for range 20 {
			res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantSample,
				Sample: backends.SampleParams{Temperature: 1, Seed: seed}})
			if err != nil {
				return nil, err
			}
			out = append(out, res.Token)
			toks = []int32{res.Token}
		}
		return out, nil
	}
	want := make([][]int32, 4)
	for i := range want {
		var err error
		if want[i], err = run(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]int32, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = run(uint64(i)) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("session %d: concurrent %v, sequential %v", i, got[i], want[i])
		}
	}
	if slices.Equal(want[0], want[1]) {
		t.Error("different seeds sampled identical sequences")
	}
}

func TestLoadErrors(t *testing.T) {
	b := engine.NewBackend(reference.New(), engine.Options{})
	ctx := context.Background()
	if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: t.TempDir() + "/none.gguf"}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := b.LoadModel(ctx, backends.LoadRequest{}); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Errorf("empty path: %v", err)
	}
	vocab, err := refdata.Path("vocab", "ggml-vocab-llama-spm.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: vocab}); !errors.Is(err, backends.ErrInvalidModel) {
		t.Errorf("vocab-only file: %v", err)
	}
}

// TestModelValidation edits the stories260K header in memory and checks
// that every defect is reported as an invalid (or unsupported) model.
func TestModelValidation(t *testing.T) {
	f, err := gguf.Open(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type edit func(f *gguf.File)
	setKV := func(key string, v gguf.Value) edit {
		return func(f *gguf.File) {
			for i := range f.Metadata {
				if f.Metadata[i].Key == key {
					f.Metadata[i].Value = v
					return
				}
			}
			f.Metadata = append(f.Metadata, gguf.KV{Key: key, Value: v})
		}
	}
	delKV := func(key string) edit {
		return func(f *gguf.File) {
			f.Metadata = slices.DeleteFunc(f.Metadata, func(kv gguf.KV) bool { return kv.Key == key })
		}
	}
	tensor := func(name string, fn func(ti *gguf.TensorInfo)) edit {
		return func(f *gguf.File) {
			for i := range f.Tensors {
				if f.Tensors[i].Name == name {
					fn(&f.Tensors[i])
				}
			}
		}
	}
	delTensor := func(name string) edit {
		return func(f *gguf.File) {
			f.Tensors = slices.DeleteFunc(f.Tensors, func(ti gguf.TensorInfo) bool { return ti.Name == name })
		}
	}
	tests := []struct {
		name string
		edit edit
		want error
	}{
		{"ok", func(*gguf.File) {}, nil},
		{"arch", setKV("general.architecture", gguf.NewString("gpt2")), backends.ErrUnsupported},
		{"no arch", delKV("general.architecture"), backends.ErrInvalidModel},
		{"no embd", delKV("llama.embedding_length"), backends.ErrInvalidModel},
		{"embd zero", setKV("llama.embedding_length", gguf.NewUint32(0)), backends.ErrInvalidModel},
		{"embd string", setKV("llama.embedding_length", gguf.NewString("64")), backends.ErrInvalidModel},
		{"embd mismatch", setKV("llama.embedding_length", gguf.NewUint32(128)), backends.ErrInvalidModel},
		{"huge layers", setKV("llama.block_count", gguf.NewUint64(1<<40)), backends.ErrInvalidModel},
		{"more layers than tensors", setKV("llama.block_count", gguf.NewUint32(6)), backends.ErrInvalidModel},
		{"heads not multiple", setKV("llama.attention.head_count_kv", gguf.NewUint32(3)), backends.ErrInvalidModel},
		{"kv heads mismatch", setKV("llama.attention.head_count_kv", gguf.NewUint32(8)), backends.ErrInvalidModel},
		{"ff mismatch", setKV("llama.feed_forward_length", gguf.NewUint32(100)), backends.ErrInvalidModel},
		{"odd rope dims", setKV("llama.rope.dimension_count", gguf.NewUint32(3)), backends.ErrInvalidModel},
		{"rope dims > head", setKV("llama.rope.dimension_count", gguf.NewUint32(16)), backends.ErrInvalidModel},
		{"bad eps", setKV("llama.attention.layer_norm_rms_epsilon", gguf.NewFloat32(-1)), backends.ErrInvalidModel},
		{"no eps", delKV("llama.attention.layer_norm_rms_epsilon"), backends.ErrInvalidModel},
		{"bad base", setKV("llama.rope.freq_base", gguf.NewFloat32(0)), backends.ErrInvalidModel},
		{"rope scaling", setKV("llama.rope.scaling.type", gguf.NewString("longrope")), backends.ErrUnsupported},
		{"rope scaling factor", setKV("llama.rope.scaling.factor", gguf.NewFloat32(-2)), backends.ErrInvalidModel},
		{"missing attn_q", delTensor("blk.2.attn_q.weight"), backends.ErrInvalidModel},
		{"missing ffn_norm", delTensor("blk.4.ffn_norm.weight"), backends.ErrInvalidModel},
		{"missing output_norm", delTensor("output_norm.weight"), backends.ErrInvalidModel},
		{"missing token_embd", delTensor("token_embd.weight"), backends.ErrInvalidModel},
		{"transposed", tensor("blk.0.ffn_down.weight", func(ti *gguf.TensorInfo) { ti.Dims = []int64{64, 172} }), backends.ErrInvalidModel},
		{"3-D", tensor("blk.0.attn_v.weight", func(ti *gguf.TensorInfo) { ti.Dims = []int64{64, 16, 2} }), backends.ErrInvalidModel},
		{"norm 2-D", tensor("blk.1.attn_norm.weight", func(ti *gguf.TensorInfo) { ti.Dims = []int64{32, 2} }), backends.ErrInvalidModel},
		{"vocab mismatch", tensor("token_embd.weight", func(ti *gguf.TensorInfo) { ti.Dims = []int64{64, 500} }), backends.ErrInvalidModel},
		{"type unknown", tensor("blk.0.attn_q.weight", func(ti *gguf.TensorInfo) { ti.Type = 99 }), backends.ErrInvalidModel},
		{"data outside file", tensor("output_norm.weight", func(ti *gguf.TensorInfo) { ti.Offset = 1 << 40 }), backends.ErrInvalidModel},
		{"duplicate", func(f *gguf.File) { f.Tensors = append(f.Tensors, f.Tensors[0]) }, backends.ErrInvalidModel},
		{"rope freqs shape", func(f *gguf.File) {
			ti := f.Tensors[0]
			ti.Name = "rope_freqs.weight"
			f.Tensors = append(f.Tensors, ti)
		}, backends.ErrInvalidModel},
		{"unknown tensor", func(f *gguf.File) {
			ti := f.Tensors[0]
			ti.Name = "blk.0.attn_q_norm.weight"
			f.Tensors = append(f.Tensors, ti)
		}, backends.ErrUnsupported},
		{"unknown key", func(f *gguf.File) {
			f.Metadata = append(f.Metadata, gguf.KV{Key: "llama.attention.sliding_window", Value: gguf.NewUint32(8)})
		}, backends.ErrUnsupported},
		{"unknown arch", setKV("general.architecture", gguf.NewString("mamba")), backends.ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := *f.File
			c.Metadata = slices.Clone(f.Metadata)
			c.Tensors = slices.Clone(f.Tensors)
			tc.edit(&c)
			_, err := engine.NewModel(&c, f.TensorData, reference.New(), nil)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			} else if err != nil {
				t.Logf("%v", err)
			}
		})
	}
	noF32 := func(ty gguf.Type) bool { return ty != gguf.TypeF32 }
	if _, err := engine.NewModel(f.File, f.TensorData, reference.New(), noF32); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("kernels without F32: %v, want ErrUnsupported", err)
	}
}

func TestOpenSessionLimits(t *testing.T) {
	ctx := context.Background()
	b := engine.NewBackend(reference.New(), engine.Options{MaxKVBytes: 100_000, DefaultContext: 16})
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: storiesPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	// 5 layers × 32 kv values × 2 × 2 bytes = 640 bytes per position,
	// 224 positions (7 blocks of 32) for 200.
	if _, err := b.OpenSession(ctx, mi.ID, 200); !errors.Is(err, backends.ErrOutOfMemory) {
		t.Errorf("OpenSession over the KV limit: %v", err)
	}
	sid, err := b.OpenSession(ctx, mi.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]int32, 17)
	for i := range toks {
		toks[i] = 1
	}
	if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantNone}); !errors.Is(err, backends.ErrContextFull) {
		t.Errorf("17 tokens in a default (16) context: %v", err)
	}
	res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks[:16], Want: backends.WantNone})
	if err != nil || res.NPast != 16 || res.Logits != nil {
		t.Errorf("16 tokens, WantNone: %+v, %v", res, err)
	}
}

// cancelling cancels a context on its n-th MatMul call.
type cancelling struct {
	engine.Kernels
	n      int
	cancel context.CancelFunc
	calls  int
}

func (c *cancelling) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	c.calls++
	if c.calls == c.n {
		c.cancel()
	}
	c.Kernels.MatMul(out, w, x, batch)
}

// TestCancelMidDecode cancels during the first layer and checks that
// the decode stops before the next one and leaves the session as it was.
func TestCancelMidDecode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	k := &cancelling{Kernels: reference.New(), n: 2, cancel: cancel}
	m := storiesModel(t, k)
	s, err := m.NewSession(16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, []int32{1, 2, 3}, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("Decode = %v, want context.Canceled", err)
	}
	// 7 matrices per layer: stopping before layer 1 means ≤ 7 calls.
	if k.calls > 7 || s.Len() != 0 {
		t.Errorf("%d MatMul calls after cancelling in layer 0; session length %d", k.calls, s.Len())
	}
}

// TestDecodeReusesActivations checks that the buffers a session keeps
// between calls (and the ones it does not keep for long batches) give
// the same logits as fresh sessions, and that a generation step
// allocates only a few objects whatever the model size.
func TestDecodeReusesActivations(t *testing.T) {
	m := storiesModel(t, reference.New())
	ctx := context.Background()
	nv := m.HP.NVocab
	toks := make([]int32, 24) // longer than any batch a session keeps buffers for
	for i := range toks {
		toks[i] = int32(1 + (i*37)%(nv-1))
	}
	ref, _ := m.NewSession(64)
	want, err := ref.Decode(ctx, toks, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []int{1, 3, 20} {
		s, _ := m.NewSession(64)
		for i := 0; i < len(toks); {
			n := min(split, len(toks)-i)
			got, err := s.Decode(ctx, toks[i:i+n], true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want[i*nv:(i+n)*nv]) {
				t.Fatalf("batches of %d: logits of positions %d..%d differ from one batch", split, i, i+n-1)
			}
			i += n
		}
	}
	// Allocations of the forward pass itself, over kernels that compute
	// nothing (the reference kernels allocate scratch of their own).
	s, _ := storiesModel(t, idleKernels{}).NewSession(64)
	if _, err := s.Decode(ctx, toks[:1], false); err != nil {
		t.Fatal(err)
	}
	pos := 1
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := s.Decode(ctx, toks[pos:pos+1], false); err != nil {
			t.Fatal(err)
		}
		pos++
	})
	// The logits and the growth of the token list: buffers allocated per
	// call or per layer would show as more.
	if allocs > 2 {
		t.Errorf("a one-token Decode made %v allocations", allocs)
	}
}

// idleKernels implements engine.Kernels without computing anything.
type idleKernels struct{}

func (idleKernels) MatMul([]float32, *engine.Weight, []float32, int)                       {}
func (idleKernels) GetRows([]float32, *engine.Weight, []int32)                             {}
func (idleKernels) RMSNorm(_, _, _ []float32, _ int, _ float32)                            {}
func (idleKernels) RoPE([]float32, []int32, int, int, int, float32)                        {}
func (idleKernels) Softmax([]float32, int)                                                 {}
func (idleKernels) SiLUMul(_, _, _ []float32)                                              {}
func (idleKernels) Add(_, _, _ []float32)                                                  {}
func (idleKernels) Mul(_, _, _ []float32)                                                  {}
func (idleKernels) Attention(_, _, _, _ []float32, _ engine.AttentionParams)               {}
func (idleKernels) ToF16([]uint16, []float32)                                              {}
func (idleKernels) AttentionF16(_, _ []float32, _ engine.KVView, _ engine.AttentionParams) {}
