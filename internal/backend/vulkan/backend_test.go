//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/internal/sample"
)

// testBackend returns the test binary's Backend over the shared device.
func testBackend(t testing.TB) *Backend {
	t.Helper()
	d := testDevice(t)
	sharedBackend.once.Do(func() {
		sharedBackend.b = &Backend{
			opts: Options{DefaultContext: 512},
			dev:  d,
			devs: shared.infos,
			reg:  engine.NewRegistry[*model, *session]("vulkan"),
		}
		sharedBackend.b.ops = newOps(d)
	})
	return sharedBackend.b
}

// sharedBackend is the test binary's backend (tests only).
var sharedBackend struct {
	once sync.Once
	b    *Backend
}

// TestGreedyStories runs llama.cpp's prompt through the device forward
// pass and checks every greedy id and the logits of every step.
func TestGreedyStories(t *testing.T) {
	b := testBackend(t)
	cases := []struct {
		model, output string
		maxNMSE       float64
	}{
		{"stories260K.gguf", "stories260K.once-upon", 1e-5},
		{"stories260K-Q8_0.gguf", "stories260K-Q8_0.once-upon", 1e-3},
		{"stories260K-Q4_0.gguf", "stories260K-Q4_0.once-upon", 1e-3},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			ctx := context.Background()
			path, err := refdata.Path("models", tc.model)
			if err != nil {
				t.Fatal(err)
			}
			out, err := refdata.LoadOutput(tc.output)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := refdata.LoadLogits(tc.output, out.NVocab)
			if err != nil {
				t.Fatal(err)
			}
			mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer b.UnloadModel(ctx, mi.ID)
			if mi.ExtraBytes == 0 {
				t.Errorf("ExtraBytes (device memory) is 0")
			}
			sid, err := b.OpenSession(ctx, mi.ID, 512)
			if err != nil {
				t.Fatal(err)
			}
			defer b.CloseSession(ctx, sid)
			toks := out.PromptIDs
			var maxN, sum float64
			for i, want := range out.GenIDs {
				res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantLogits})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got := sample.Greedy(res.Logits); got != want {
					t.Fatalf("step %d: greedy id %d, llama.cpp %d", i, got, want)
				}
				if i < len(ref) {
					n := refdata.NMSE(res.Logits, ref[i])
					sum += n
					maxN = max(maxN, n)
				}
				toks = []int32{want}
			}
			t.Logf("%s: %d greedy ids match; logits NMSE max %.3g mean %.3g over %d steps; device bytes %d",
				tc.model, len(out.GenIDs), maxN, sum/float64(len(ref)), len(ref), mi.ExtraBytes)
			if maxN > tc.maxNMSE {
				t.Errorf("logits NMSE %.3g exceeds %.3g", maxN, tc.maxNMSE)
			}
		})
	}
}

func TestBatchedPrefillAndSample(t *testing.T) {
	// A prompt of several micro-batches, decoded in one call, and the
	// same prompt token by token must give the same logits; WantSample at temperature 0 is
	// greedy; Truncate rewinds.
	b := testBackend(t)
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	prompt := make([]int32, 40)
	for i := range prompt {
		prompt[i] = int32(1 + (i*37)%(mi.NVocab-1))
	}
	s1, err := b.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	// Micro-batches of 16 tokens: the prompt takes three command buffers.
	if err := b.setMicroBatch(s1, 16); err != nil {
		t.Fatal(err)
	}
	r1, err := b.Decode(ctx, backends.DecodeRequest{Session: s1, Tokens: prompt, Want: backends.WantLogits})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	var r2 *backends.DecodeResult
	for i := range prompt {
		want := backends.WantNone
		if i == len(prompt)-1 {
			want = backends.WantLogits
		}
		if r2, err = b.Decode(ctx, backends.DecodeRequest{Session: s2, Tokens: prompt[i : i+1], Want: want}); err != nil {
			t.Fatal(err)
		}
	}
	if n := refdata.NMSE(r1.Logits, r2.Logits); n > 1e-9 {
		t.Errorf("batched vs single-token logits NMSE %.3g", n)
	}
	if r2.NPast != len(prompt) {
		t.Errorf("NPast %d, want %d", r2.NPast, len(prompt))
	}
	if err := b.Truncate(ctx, s2, len(prompt)-1); err != nil {
		t.Fatal(err)
	}
	r3, err := b.Decode(ctx, backends.DecodeRequest{Session: s2, Tokens: prompt[len(prompt)-1:], Want: backends.WantSample})
	if err != nil {
		t.Fatal(err)
	}
	if g := sample.Greedy(r1.Logits); r3.Token != g {
		t.Errorf("sampled %d at temperature 0, greedy is %d", r3.Token, g)
	}
	_, err = b.Decode(ctx, backends.DecodeRequest{Session: s2, Tokens: make([]int32, 30), Want: backends.WantLogits})
	if !errors.Is(err, backends.ErrContextFull) {
		t.Errorf("overfull decode: %v, want ErrContextFull", err)
	}
	_, err = b.Decode(ctx, backends.DecodeRequest{Session: s2, Tokens: []int32{int32(mi.NVocab)}, Want: backends.WantLogits})
	if !errors.Is(err, backends.ErrInvalidArgument) {
		t.Errorf("bad token: %v, want ErrInvalidArgument", err)
	}
	for _, s := range []backends.SessionID{s1, s2} {
		if err := b.CloseSession(ctx, s); err != nil {
			t.Error(err)
		}
	}
	if _, err := b.Decode(ctx, backends.DecodeRequest{Session: s1, Tokens: prompt[:1]}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("decode on a closed session: %v, want ErrNotFound", err)
	}
}

func TestTensorOpNamedWeight(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K-Q4_0.gguf")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	res, err := b.TensorOp(ctx, backends.TensorOpRequest{Op: backends.OpGetRows,
		Inputs: []backends.TensorRef{{Model: mi.ID, Name: "token_embd.weight"}}, Params: backends.OpParams{IDs: []int32{3, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2*mi.NEmbd {
		t.Fatalf("get_rows returned %d values, want %d", len(res.Data), 2*mi.NEmbd)
	}
	_, err = b.TensorOp(ctx, backends.TensorOpRequest{Op: backends.OpGetRows,
		Inputs: []backends.TensorRef{{Model: mi.ID, Name: "nope"}}, Params: backends.OpParams{IDs: []int32{0}}})
	if !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("unknown weight: %v, want ErrNotFound", err)
	}
	q8k := backends.TensorRef{Type: gguf.TypeQ8_K, Shape: []int{256, 1}, Data: make([]byte, 292)}
	_, err = b.TensorOp(ctx, backends.TensorOpRequest{Op: backends.OpGetRows, Inputs: []backends.TensorRef{q8k}, Params: backends.OpParams{IDs: []int32{0}}})
	if !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("Q8_K input: %v, want ErrUnsupported", err)
	}
}

func TestOutOfMemory(t *testing.T) {
	// A memory limit below the model's weights, or a KV cache beyond
	// what is left, fails with ErrOutOfMemory before anything is
	// allocated.
	d := testDevice(t)
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{opts: Options{MemoryLimit: 100_000, DefaultContext: 64}, dev: d, devs: shared.infos,
		reg: engine.NewRegistry[*model, *session]("vulkan")}
	if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: path}); !errors.Is(err, backends.ErrOutOfMemory) {
		t.Fatalf("load over the limit: %v, want ErrOutOfMemory", err)
	}
	b.opts.MemoryLimit = 1_400_000
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	if _, err := b.OpenSession(ctx, mi.ID, mi.NCtxTrain); !errors.Is(err, backends.ErrOutOfMemory) {
		t.Errorf("session over the limit: %v, want ErrOutOfMemory", err)
	}
	sid, err := b.OpenSession(ctx, mi.ID, 16)
	if err != nil {
		t.Fatalf("small session: %v", err)
	}
	if err := b.CloseSession(ctx, sid); err != nil {
		t.Error(err)
	}
}

func TestInfoReportsDevice(t *testing.T) {
	b := testBackend(t)
	info, err := b.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Devices) != 1 || info.Devices[0].Name == "" || info.Devices[0].Kind == "" {
		t.Fatalf("Info.Devices = %+v, want the device in use", info.Devices)
	}
	t.Logf("device: %+v", info.Devices[0])
	if len(info.Types) != len(weightTypes()) || len(info.Ops) == 0 {
		t.Errorf("Info types %v ops %v", info.Types, info.Ops)
	}
}

func TestStagingUpload(t *testing.T) {
	// Weights uploaded through staging copies (as on a discrete GPU,
	// whose device memory is not mapped) give the same logits.
	d := testDevice(t)
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K-Q4_0.gguf")
	if err != nil {
		t.Fatal(err)
	}
	var logits [2][]float32
	// Staged first, so that its buffers cannot reuse memory that a
	// mapped upload of the same model just filled.
	for i, staging := range []bool{true, false} {
		d.mu.Lock()
		d.staging = staging
		d.mu.Unlock()
		b := &Backend{opts: Options{DefaultContext: 16}, dev: d, devs: shared.infos,
			reg: engine.NewRegistry[*model, *session]("vulkan")}
		mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		sid, err := b.OpenSession(ctx, mi.ID, 16)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1, 2, 3}, Want: backends.WantLogits})
		if err != nil {
			t.Fatal(err)
		}
		logits[i] = res.Logits
		if err := b.UnloadModel(ctx, mi.ID); err != nil {
			t.Fatal(err)
		}
	}
	d.mu.Lock()
	d.staging = false
	d.mu.Unlock()
	if n := refdata.NMSE(logits[0], logits[1]); n != 0 || len(logits[0]) == 0 {
		t.Errorf("staged upload changes the logits: NMSE %.3g", n)
	}
}

func TestDecodeCancelled(t *testing.T) {
	b := testBackend(t)
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	sid, err := b.OpenSession(ctx, mi.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Decode(cctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1, 2}, Want: backends.WantLogits}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled decode: %v, want context.Canceled", err)
	}
	res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}, Want: backends.WantNone})
	if err != nil {
		t.Fatal(err)
	}
	if res.NPast != 1 || res.Logits != nil {
		t.Errorf("after a cancelled decode: NPast %d (want 1), logits %d", res.NPast, len(res.Logits))
	}
	if _, err := b.OpenSession(ctx, mi.ID, mi.NCtxTrain+1); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Errorf("oversized context: %v, want ErrInvalidArgument", err)
	}
	if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: path + ".missing"}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.gguf")
	if err := os.WriteFile(junk, []byte("GGUF\x03\x00\x00\x00 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: junk}); !errors.Is(err, backends.ErrInvalidModel) {
		t.Errorf("junk file: %v, want ErrInvalidModel", err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	// Sessions of one model decoding at the same time share the device
	// queue and must not disturb each other.
	b := testBackend(t)
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	out, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	const n, steps = 3, 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sid, err := b.OpenSession(ctx, mi.ID, 64)
			if err != nil {
				errs <- err
				return
			}
			defer b.CloseSession(ctx, sid)
			toks := out.PromptIDs
			for i := range steps {
				res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantSample})
				if err != nil {
					errs <- err
					return
				}
				if res.Token != out.GenIDs[i] {
					errs <- fmt.Errorf("step %d: token %d, llama.cpp %d", i, res.Token, out.GenIDs[i])
					return
				}
				toks = []int32{res.Token}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
