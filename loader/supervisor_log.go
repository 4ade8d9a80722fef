package loader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// stderrTail receives a plugin's raw stderr (go-plugin's
// ClientConfig.Stderr; go-plugin itself re-emits each line under the
// host logger) and keeps the last error lines for crash reports: hclog
// JSON lines at error level, the head of a Go panic or fatal error, and
// any other non-JSON output (C libraries, the runtime).
type stderrTail struct {
	max int

	mu      sync.Mutex
	partial []byte
	kept    []string
	inPanic int // lines of the current panic still to keep; -1: skipping the rest of its trace
}

func newStderrTail(max int) *stderrTail { return &stderrTail{max: max} }

// panicLines is how many lines of a panic or fatal error are kept: the
// message, the goroutine and the innermost frame (function, file:line).
const panicLines = 4

// Write implements io.Writer.
func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data := p
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(t.partial) < 64<<10 {
				t.partial = append(t.partial, data...)
			}
			break
		}
		line := append(t.partial, data[:i]...)
		t.partial = nil
		t.line(line)
		data = data[i+1:]
	}
	return len(p), nil
}

func (t *stderrTail) line(b []byte) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return
	}
	if s[0] == '{' {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			t.inPanic = 0
			lvl, _ := m["@level"].(string)
			if lvl != "error" {
				return
			}
			t.keep(formatEntry(m))
			return
		}
	}
	switch {
	case strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: "):
		t.inPanic = panicLines
	case t.inPanic < 0: // the rest of a panic's stack trace
		return
	case t.inPanic == 0:
		t.keep(s)
		return
	}
	t.keep(s)
	if t.inPanic--; t.inPanic == 0 {
		t.inPanic = -1
	}
}

func (t *stderrTail) keep(s string) {
	t.kept = append(t.kept, s)
	if len(t.kept) > t.max {
		t.kept = t.kept[len(t.kept)-t.max:]
	}
}

// lines returns the kept lines, oldest first.
func (t *stderrTail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.kept...)
}

// formatEntry renders an hclog JSON entry as "message key=value ...".
func formatEntry(m map[string]any) string {
	var b strings.Builder
	msg, _ := m["@message"].(string)
	b.WriteString(msg)
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, m[k])
	}
	return b.String()
}
