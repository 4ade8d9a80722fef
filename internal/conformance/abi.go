package conformance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/internal/loaderhost"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// abiModelName is the name the ABI guest loads the F32 stories model by.
const abiModelName = "stories260k"

// RunABI runs the ABI guest (internal/conformance/abiguest, compiled to
// wasm) through the real host against backend b: load by name, model
// info, tokenize/detokenize, sessions with host sampling and truncation,
// tensor ops routed to b, one-call generate and the error paths. Each
// check the guest prints becomes one result.
func RunABI(ctx context.Context, b backends.Backend, backendName string, guestWasm []byte, refDir string, log hclog.Logger) []Result {
	fail := func(detail string) []Result {
		return []Result{{Kind: "abi", Case: "abi/run", NMSE: -1, Status: Fail, Detail: detail}}
	}
	if refDir == "" {
		return []Result{{Kind: "abi", Case: "abi/run", NMSE: -1, Status: Skip, Detail: "no reference directory"}}
	}
	out, err := refdata.LoadOutputFrom(refDir, "stories260K.once-upon")
	if err != nil {
		return fail(err.Error())
	}
	src := fmt.Sprintf("models_dir = %q\nmodel %q {\n  path = \"stories260K.gguf\"\n}\n", filepath.Join(refDir, "models"), abiModelName)
	cfg, err := loader.ParseConfig([]byte(src), "conformance-abi.hcl")
	if err != nil {
		return fail(err.Error())
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cache := loader.NewModelCache(loader.CacheConfig{Registry: loader.NewRegistry(cfg), Backend: b, BackendName: backendName, Logger: log})
	defer cache.Close()
	host, err := core.NewHost(ctx, core.Config{Models: loaderhost.Models(cache), Logger: log})
	if err != nil {
		return fail(err.Error())
	}
	defer host.Close(context.WithoutCancel(ctx))

	var stdout, stderr bytes.Buffer
	start := time.Now()
	res, err := host.Run(ctx, core.RunRequest{
		Wasm:   guestWasm,
		Name:   "abiguest",
		Args:   []string{abiModelName, joinIDs(out.PromptIDs), joinIDs(out.GenIDs)},
		Stdin:  strings.NewReader(out.GenText),
		Stdout: &stdout, Stderr: &stderr,
		Policy: core.Policy{Timeout: 2 * time.Minute},
	})
	ms := float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		return fail(fmt.Sprintf("run: %v; stderr: %s", err, firstLine(stderr.String())))
	}
	var results []Result
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "PASS "):
			results = append(results, Result{Kind: "abi", Case: "abi/" + strings.TrimPrefix(line, "PASS "), NMSE: -1, Status: Pass})
		case strings.HasPrefix(line, "FAIL "):
			name, detail, _ := strings.Cut(strings.TrimPrefix(line, "FAIL "), ": ")
			results = append(results, Result{Kind: "abi", Case: "abi/" + name, NMSE: -1, Status: Fail, Detail: detail})
		}
	}
	stream := Result{Kind: "abi", Case: "abi/generate_stream", Types: "stories260K.gguf", NMSE: -1, Millis: ms, Status: Pass,
		Detail: fmt.Sprintf("%d bytes streamed", stdout.Len())}
	if stdout.String() != out.GenText {
		stream.Status, stream.Detail = Fail, fmt.Sprintf("streamed %q, want llama.cpp's %q", firstLine(stdout.String()), firstLine(out.GenText))
	}
	results = append(results, stream)
	if res.ExitCode != 0 && !hasFail(results) {
		results = append(results, Result{Kind: "abi", Case: "abi/exit", NMSE: -1, Status: Fail, Detail: fmt.Sprintf("guest exited %d", res.ExitCode)})
	}
	if len(results) < 10 {
		results = append(results, Result{Kind: "abi", Case: "abi/checks", NMSE: -1, Status: Fail,
			Detail: fmt.Sprintf("the guest reported only %d checks; stderr: %s", len(results)-1, firstLine(stderr.String()))})
	}
	return results
}

func hasFail(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}
