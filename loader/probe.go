package loader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// Prober starts a backend's plugin and judges whether it can serve
// (device present, self-test passed). It is called only for backends with
// probe = true whose arch, features and binary are fine.
type Prober func(ctx context.Context, b BackendConfig) ProbeResult

// binaryErr says why the plugin binary at p cannot be started, or "".
func binaryErr(dir, p string) string {
	st, err := os.Stat(p)
	if err != nil {
		shown := p
		if rel, rerr := filepath.Rel(dir, p); rerr == nil && !strings.HasPrefix(rel, "..") {
			shown = rel
		}
		if os.IsNotExist(err) {
			return fmt.Sprintf("binary not built: run make (%s)", shown)
		}
		return fmt.Sprintf("binary %s: %v", shown, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Sprintf("binary %s is not a regular file", p)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Sprintf("binary %s is not executable", p)
	}
	return ""
}

// Preflight gathers the ProbeResults Select needs: it checks every
// backend's binary and, for backends with probe = true that could
// otherwise run, calls probe (nil: such backends stay "not probed").
func Preflight(ctx context.Context, m Machine, cfg *Config, probe Prober) map[string]ProbeResult {
	out := make(map[string]ProbeResult, len(cfg.Backends))
	for _, b := range cfg.Backends {
		pr := ProbeResult{BinaryErr: binaryErr(cfg.Dir, b.Binary)}
		if b.Probe && probe != nil && pr.BinaryErr == "" && len(staticReasons(&m, &b)) == 0 {
			pr = probe(ctx, b)
			pr.Probed = true
		}
		out[b.Name] = pr
	}
	return out
}

// softwareDevice reports whether a device is a software rasterizer.
func softwareDevice(d backends.Device) bool {
	if strings.EqualFold(d.Kind, "cpu") {
		return true
	}
	n := strings.ToLower(d.Name + " " + d.Driver)
	for _, s := range []string{"llvmpipe", "lavapipe", "swiftshader", "softpipe"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// JudgeBackend probes a started backend: it asks Info, checks that a GPU
// backend reports a device (all-software devices set Software), and runs a
// tiny matmul self-test against values computed here.
func JudgeBackend(ctx context.Context, b backends.Backend, gpu bool) ProbeResult {
	pr := ProbeResult{Probed: true}
	info, err := b.Info(ctx)
	if err != nil {
		pr.Veto = fmt.Sprintf("info: %v", err)
		return pr
	}
	pr.Info = info
	if gpu {
		if len(info.Devices) == 0 {
			// The self-test fails with the backend's own reason (no
			// loader library, no driver, built without headers).
			pr.Veto = "no device found"
			if err := selfTest(ctx, b); err != nil {
				pr.Veto += ": " + err.Error()
			}
			return pr
		}
		pr.Software = true
		for _, d := range info.Devices {
			if !softwareDevice(d) {
				pr.Software = false
			}
		}
	}
	if err := selfTest(ctx, b); err != nil {
		pr.Veto = fmt.Sprintf("self-test: %v", err)
	}
	return pr
}

// selfTest multiplies a 3x4 weight by a 4x2 input through TensorOp and
// compares with the product computed in Go. A backend without TensorOp
// (ErrUnsupported) passes: it has nothing to test through this door.
func selfTest(ctx context.Context, b backends.Backend) error {
	const cols, rows, batch = 4, 3, 2
	w := make([]float32, cols*rows)
	x := make([]float32, cols*batch)
	for i := range w {
		w[i] = float32(i%5) - 1.5
	}
	for i := range x {
		x[i] = float32(i%3) + 0.25
	}
	res, err := b.TensorOp(ctx, backends.TensorOpRequest{
		Op: backends.OpMatMul,
		Inputs: []backends.TensorRef{
			{Type: gguf.TypeF32, Shape: []int{cols, rows}, Data: gguf.F32Bytes(w)},
			{Type: gguf.TypeF32, Shape: []int{cols, batch}, Data: gguf.F32Bytes(x)},
		},
	})
	if err != nil {
		if errors.Is(err, backends.ErrUnsupported) {
			return nil
		}
		return err
	}
	if len(res.Data) != rows*batch {
		return fmt.Errorf("matmul returned %d values, want %d", len(res.Data), rows*batch)
	}
	for j := range batch {
		for r := range rows {
			var want float64
			for k := range cols {
				want += float64(w[r*cols+k]) * float64(x[j*cols+k])
			}
			got := float64(res.Data[j*rows+r])
			if math.IsNaN(got) || math.Abs(got-want) > 1e-3*(1+math.Abs(want)) {
				return fmt.Errorf("matmul[%d,%d] = %g, want %g", r, j, got, want)
			}
		}
	}
	return nil
}
