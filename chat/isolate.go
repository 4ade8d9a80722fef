package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"
)

// Rendering a template in-process cannot be fully bounded: the engine
// has no step or memory budget, a loop that calls nothing cannot be
// interrupted, and an allocation such as 'x' * 10**12 kills the Go
// runtime outright. RenderIsolated therefore renders in a child process
// (this same executable, re-run with childEnv set): the parent kills it
// at the time limit, and the child caps its own address space and stack
// so a runaway allocation or recursion ends the child, not the caller.

// childEnv, set to "1", makes any executable that links this package
// serve one render request on stdin/stdout and exit, before main runs.
const childEnv = "REALM_CHAT_TEMPLATE_CHILD"

// childMemory is the address space a child may add to what it has at
// start (the Go runtime reserves about a GiB of address space up front).
const childMemory = 1 << 30

// childStartup is the time allowed on top of Limits.Timeout for the
// child process to start and answer.
const childStartup = 10 * time.Second

func init() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(serveChild(os.Stdin, os.Stdout))
	}
}

type childRequest struct {
	Template string  `json:"template"`
	Options  Options `json:"options"`
	Input    Input   `json:"input"`
}

type childResponse struct {
	Prompt string `json:"prompt"`
	// Error is set on failure; Raise says it was raise_exception's.
	Error string `json:"error,omitempty"`
	Raise bool   `json:"raise,omitempty"`
}

func serveChild(r io.Reader, w io.Writer) int {
	limitMemory(childMemory)
	debug.SetMaxStack(64 << 20)
	var req childRequest
	resp := childResponse{}
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&req); err != nil {
		resp.Error = fmt.Sprintf("reading the render request: %v", err)
	} else if t, err := Parse(req.Template, req.Options); err != nil {
		resp.Error = err.Error()
	} else if out, err := t.Render(context.Background(), req.Input); err != nil {
		var re *RaiseError
		if errors.As(err, &re) {
			resp.Error, resp.Raise = re.Message, true
		} else {
			resp.Error = err.Error()
		}
	} else {
		resp.Prompt = out
	}
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		return 1
	}
	return 0
}

// RenderIsolated parses src and renders in in a child process (the
// running executable, which links this package): a template that loops,
// recurses or allocates without bound costs at most opt.Limits.Timeout
// and a GiB of the child's memory, and the error says so. Errors are as
// those of Parse and Render. It costs a process start (tens of
// milliseconds) per call.
func RenderIsolated(ctx context.Context, src string, opt Options, in Input) (string, error) {
	opt.Limits = opt.Limits.withDefaults()
	if len(src) > opt.Limits.MaxTemplateBytes {
		return "", fmt.Errorf("%w: %d bytes, over the limit of %d", ErrTemplate, len(src), opt.Limits.MaxTemplateBytes)
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	req, err := json.Marshal(childRequest{Template: src, Options: opt, Input: in})
	if err != nil {
		return "", err
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("starting the template renderer: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, opt.Limits.Timeout+childStartup)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = bytes.NewReader(req)
	stdout := &capped{max: opt.Limits.MaxOutputBytes*2 + 4096}
	stderr := &capped{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if cctx.Err() != nil {
		return "", limitErr("rendering took longer than %v", opt.Limits.Timeout)
	}
	if stdout.over {
		return "", limitErr("the prompt is over the limit of %d bytes", opt.Limits.MaxOutputBytes)
	}
	var resp childResponse
	if runErr != nil || json.Unmarshal(stdout.buf.Bytes(), &resp) != nil {
		return "", fmt.Errorf("%w: the renderer process failed (%v): %s", ErrTemplate, runErr, fatalLine(stderr.buf.String()))
	}
	switch {
	case resp.Raise:
		return "", &RaiseError{Message: resp.Error}
	case resp.Error != "":
		return "", fmt.Errorf("%w: %s", ErrTemplate, strings.TrimPrefix(resp.Error, ErrTemplate.Error()+": "))
	}
	return resp.Prompt, nil
}

// fatalLine picks the Go runtime's "fatal error: ..." line (out of
// memory, stack overflow) out of a child's stderr.
func fatalLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "runtime: goroutine stack exceeds") {
			return strings.TrimSpace(l)
		}
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}

// capped keeps at most max bytes and records that more came.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); len(p) > room {
		c.over = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}
