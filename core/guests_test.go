package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
)

// Go guests are built from source once per test binary (one go build
// for all of them, so the runtime is compiled once).
var guestPkgs = []string{"./examples/sampler", "./examples/generate", "./examples/pipeline", "./core/testdata/hostile"}

type guestBuild struct {
	once sync.Once
	dir  string
	err  error
}

func (g *guestBuild) get(t testing.TB, name string) []byte {
	t.Helper()
	g.once.Do(func() {
		root, err := refdata.RepoRoot()
		if err != nil {
			g.err = err
			return
		}
		g.dir, g.err = os.MkdirTemp("", "realm-guests-")
		if g.err != nil {
			return
		}
		cmd := exec.Command("go", append([]string{"build", "-o", g.dir + string(filepath.Separator)}, guestPkgs...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			g.err = fmt.Errorf("building guests: %v\n%s", err, out)
		}
	})
	if g.err != nil {
		t.Fatal(g.err)
	}
	b, err := os.ReadFile(filepath.Join(g.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guests.dir != "" {
		os.RemoveAll(guests.dir)
	}
	os.Exit(code)
}

// guests is the per-binary build cache (test-only state).
var guests guestBuild

// TestSamplerGreedyMatchesReference: the decode loop in WASM, argmax in
// the guest, reproduces llama.cpp's greedy output exactly.
func TestSamplerGreedyMatchesReference(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	wasm := guests.get(t, "sampler")
	n := fmt.Sprint(len(ref.GenIDs))
	out := e.run(t, wasm, Policy{Timeout: testTimeout}, "-greedy", "-ids", "-n", n, "stories260k", ref.Prompt)
	if out.err != nil || out.res.ExitCode != 0 {
		t.Fatalf("run: %v exit %d\n%s", out.err, out.res.ExitCode, out.stderr)
	}
	var want []string
	for _, id := range ref.GenIDs {
		want = append(want, fmt.Sprint(id))
	}
	if !strings.Contains(out.stderr, "ids: "+strings.Join(want, " ")+"\n") {
		t.Errorf("ids differ:\n got %s\nwant ids: %s", out.stderr, strings.Join(want, " "))
	}
	if got, want := strings.TrimSuffix(out.stdout, "\n"), ref.GenText; got != want {
		t.Errorf("text:\n got %q\nwant %q", got, want)
	}
	if out.res.TokensGenerated != len(ref.GenIDs)-1 || out.res.TokensDecoded != len(ref.PromptIDs)+len(ref.GenIDs)-1 {
		t.Errorf("result counts: %+v", out.res)
	}
}

// TestGenerateExample: one-call generate streams the same greedy text.
func TestGenerateExample(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	wasm := guests.get(t, "generate")
	out := e.run(t, wasm, Policy{Timeout: testTimeout}, "stories260k", ref.Prompt, fmt.Sprint(len(ref.GenIDs)))
	if out.err != nil || out.res.ExitCode != 0 {
		t.Fatalf("run: %v exit %d\n%s", out.err, out.res.ExitCode, out.stderr)
	}
	if got, want := strings.TrimSuffix(out.stdout, "\n"), ref.GenText; got != want {
		t.Errorf("text:\n got %q\nwant %q", got, want)
	}
	if out.res.TokensGenerated != len(ref.GenIDs) {
		t.Errorf("tokens generated = %d, want %d", out.res.TokensGenerated, len(ref.GenIDs))
	}
	// The same request as JSON on stdin (the server's way).
	var stdout bytes.Buffer
	req := fmt.Sprintf(`{"model":"stories260k","prompt":%q,"max_tokens":8,"stop":["girl"]}`, ref.Prompt)
	res, err := e.h.Run(context.Background(), RunRequest{Wasm: wasm, Stdin: strings.NewReader(req), Stdout: &stdout, Policy: Policy{Timeout: testTimeout}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("stdin run: %v %+v", err, res)
	}
	if got := stdout.String(); got != ", there was a little \n" {
		t.Errorf("stop string: got %q", got)
	}
}

// TestPipelineExample: two models loaded at once, taking turns.
func TestPipelineExample(t *testing.T) {
	e := newTestEnv(t)
	wasm := guests.get(t, "pipeline")
	out := e.run(t, wasm, Policy{Timeout: testTimeout}, "stories260k", "stories260k-q8", "Once upon a time", "16", "4")
	if out.err != nil || out.res.ExitCode != 0 {
		t.Fatalf("run: %v exit %d\n%s", out.err, out.res.ExitCode, out.stderr)
	}
	if strings.Count(out.stderr, "[stories260k writes]") != 2 || strings.Count(out.stderr, "[stories260k-q8 writes]") != 2 {
		t.Errorf("turns:\n%s", out.stderr)
	}
	// Both models share the greedy story's opening.
	if !strings.HasPrefix(out.stdout, ", there was a little girl") {
		t.Errorf("stdout = %q", out.stdout)
	}
}

// TestGoHostile: a Go guest misbehaving in Go's ways. Goroutines
// interleave their host calls on the guest's single thread without
// mixing handles; the rest end cleanly and the host serves the next run.
func TestGoHostile(t *testing.T) {
	e := newTestEnv(t)
	wasm := guests.get(t, "hostile")
	for _, c := range []struct {
		mode     string
		policy   Policy
		wantErr  error
		wantExit int
		wantOut  string
	}{
		{mode: "goroutines", wantOut: "ok 16\n"},
		{mode: "alloc", policy: Policy{MemoryBytes: 32 << 20}, wantExit: 2}, // the Go runtime's "out of memory"
		{mode: "spin", policy: Policy{Timeout: 300 * time.Millisecond}, wantErr: ErrDeadline, wantExit: -1},
		{mode: "flood", policy: Policy{MaxOutput: 4 << 20}, wantErr: ErrOutputLimit, wantExit: -1},
		{mode: "panic", wantExit: 2},
	} {
		t.Run(c.mode, func(t *testing.T) {
			p := c.policy
			if p.Timeout == 0 {
				p.Timeout = testTimeout
			}
			out := e.run(t, wasm, p, c.mode, "stories260k")
			if !errors.Is(out.err, c.wantErr) || (c.wantErr == nil && out.err != nil) {
				t.Fatalf("error = %v, want %v\n%s", out.err, c.wantErr, out.stderr)
			}
			if out.res.ExitCode != c.wantExit {
				t.Errorf("exit = %d, want %d\n%s", out.res.ExitCode, c.wantExit, out.stderr)
			}
			if c.wantOut != "" && out.stdout != c.wantOut {
				t.Errorf("stdout = %q", out.stdout)
			}
			if c.mode == "flood" && out.res.OutputBytes > 4<<20 {
				t.Errorf("%d bytes got through a 4 MiB cap", out.res.OutputBytes)
			}
			if next := e.run(t, wasm, Policy{Timeout: testTimeout}, "goroutines", "stories260k"); next.err != nil || next.stdout != "ok 16\n" {
				t.Errorf("next run: %v %q", next.err, next.stdout)
			}
		})
	}
}

// TestGuestErrors: an SDK error carries the errno and the host's message,
// and a guest's non-zero exit is a finished run, not a host error.
func TestGuestErrors(t *testing.T) {
	e := newTestEnv(t)
	out := e.run(t, guests.get(t, "generate"), Policy{Timeout: testTimeout, ModelPatterns: []string{"llama*"}}, "stories260k", "hi")
	if out.err != nil {
		t.Fatal(out.err)
	}
	if out.res.ExitCode != 1 || !strings.Contains(out.stderr, "EACCES") || !strings.Contains(out.stderr, `model "stories260k" is not allowed`) {
		t.Errorf("exit %d stderr %q", out.res.ExitCode, out.stderr)
	}
}

// TestCGuest: the C example, built with clang for wasm32-wasi.
func TestCGuest(t *testing.T) {
	if slices.Contains(strings.Fields(os.Getenv("REALM_SKIP")), "cguest") {
		t.Skip("C guest skipped: its Debian packages are missing (make test runs scripts/deps.sh, which says what to install)")
	}
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Fatal("clang not found: install clang, lld, wasi-libc and libclang-rt-dev-wasm32 (make test does)")
	}
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	wasmPath := filepath.Join(t.TempDir(), "c-generate.wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-O2", "-I", "abi", "-o", wasmPath, "examples/c-generate/main.c")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	out := e.run(t, wasm, Policy{Timeout: testTimeout}, "stories260k", "Once upon a time", "4")
	if out.err != nil || out.res.ExitCode != 0 {
		t.Fatalf("run: %v %+v\n%s", out.err, out.res, out.stderr)
	}
	if out.stdout != ", there was a\n" {
		t.Errorf("stdout = %q", out.stdout)
	}
	out = e.run(t, wasm, Policy{Timeout: testTimeout}, "../etc", "x")
	if out.err != nil || out.res.ExitCode != 1 || !strings.Contains(out.stderr, "errno 1: invalid model name") {
		t.Errorf("bad name: %v %+v %q", out.err, out.res, out.stderr)
	}
}
