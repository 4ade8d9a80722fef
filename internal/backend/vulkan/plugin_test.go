//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// TestPluginConcurrentSessions runs the real plugin under the loader's
// supervisor: 4 sessions of a mixture-of-experts model decoding at once
// over gRPC (merged on the device) give each session's solo ids and
// logits.
func TestPluginConcurrentSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin")
	}
	testDevice(t) // skips without a device
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "realm-backend-vulkan")
	build := exec.Command("go", "build", "-tags", "vulkan_headers", "-o", bin, "./cmd/realm-backend-vulkan")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	sup, err := loader.NewSupervisor(ctx, loader.SupervisorConfig{Plugins: []loader.PluginSpec{{Name: "vulkan", Binary: bin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	mi, err := sup.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(root, "testdata", "arch", "qwen3moe.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	const nSess, nGen = 4, 6
	run := func(i int) ([][]float32, error) {
		sid, err := sup.OpenSession(ctx, mi.ID, 64)
		if err != nil {
			return nil, err
		}
		defer sup.CloseSession(ctx, sid)
		feed := []int32{int32(1 + i), int32(7 + 3*i), int32(11 + i)}
		var out [][]float32
		for range nGen {
			r, err := sup.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
			if err != nil {
				return nil, err
			}
			out = append(out, r.Logits)
			feed = []int32{int32(argmax(r.Logits))}
		}
		return out, nil
	}
	solo := make([][][]float32, nSess)
	for i := range nSess {
		if solo[i], err = run(i); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][][]float32, nSess)
	errs := make([]error, nSess)
	var wg sync.WaitGroup
	for i := range nSess {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = run(i)
		}()
	}
	wg.Wait()
	for i := range nSess {
		if errs[i] != nil {
			t.Fatalf("session %d: %v", i, errs[i])
		}
		for step := range nGen {
			if n := refdata.NMSE(got[i][step], solo[i][step]); !(n <= 1e-7) {
				t.Errorf("session %d step %d: NMSE %.3g against its solo run", i, step, n)
			}
			if g, w := argmax(got[i][step]), argmax(solo[i][step]); g != w {
				t.Errorf("session %d step %d: greedy %d, alone %d", i, step, g, w)
			}
		}
	}
}
