//go:build wasip1

// Command abiguest is the guest of the conformance suite's ABI cases: it
// exercises every group of guest-facing host functions against one
// backend and prints one line per check on stderr:
//
//	PASS name
//	FAIL name: detail
//
// Usage: abiguest MODEL_NAME PROMPT_IDS GEN_IDS < expected-text
// (ids comma-separated). What one-call generate streams goes to stdout
// for the host to compare with the expected text.
package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: abiguest MODEL PROMPT_IDS GEN_IDS < expected-text")
		os.Exit(2)
	}
	name := os.Args[1]
	promptIDs, genIDs := parseIDs(os.Args[2]), parseIDs(os.Args[3])
	text, _ := io.ReadAll(os.Stdin)
	os.Exit(run(name, promptIDs, genIDs, string(text)))
}

type checker struct{ failed int }

func (c *checker) check(name string, err error) {
	if err != nil {
		c.failed++
		fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", name, err)
		return
	}
	fmt.Fprintf(os.Stderr, "PASS %s\n", name)
}

func parseIDs(s string) []int32 {
	var ids []int32
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(f); err == nil {
			ids = append(ids, int32(n))
		}
	}
	return ids
}

// wantErrno checks that err is the host error errno.
func wantErrno(err error, errno abi.Errno) error {
	if !errors.Is(err, errno) {
		return fmt.Errorf("got %v, want %s", err, errno)
	}
	return nil
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func run(name string, promptIDs, genIDs []int32, text string) int {
	c := &checker{}
	m, err := guest.LoadModel(name)
	c.check("load_model_by_name", err)
	if err != nil {
		return 1
	}
	c.check("list_models", func() error {
		names, err := guest.ListModels()
		if err != nil {
			return err
		}
		if !slices.Contains(names, name) {
			return fmt.Errorf("%q not in %v", name, names)
		}
		return nil
	}())
	c.check("model_info", func() error {
		info, err := m.Info()
		if err != nil {
			return err
		}
		if info.Arch != "llama" || info.NVocab <= 0 || info.Backend == "" {
			return fmt.Errorf("info %+v", info)
		}
		return nil
	}())
	c.check("tokenize", func() error {
		ids, err := m.Tokenize(promptText(m, promptIDs), abi.TokenizeAddBOS|abi.TokenizeParseSpecial)
		if err != nil {
			return err
		}
		if !slices.Equal(ids, promptIDs) {
			return fmt.Errorf("ids %v, want %v", ids, promptIDs)
		}
		return nil
	}())
	c.check("detokenize", func() error {
		got, err := m.Detokenize(genIDs, abi.DetokenizePieces)
		if err != nil {
			return err
		}
		if got != text {
			return fmt.Errorf("text %q, want %q", got, text)
		}
		return nil
	}())

	// Sessions: decode, logits, host sampling, truncate, close.
	c.check("session_greedy", func() error {
		s, err := m.NewSession(256)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err := s.Decode(promptIDs); err != nil {
			return err
		}
		logits, err := s.Logits()
		if err != nil {
			return err
		}
		if argmax(logits) != genIDs[0] {
			return fmt.Errorf("argmax of the first logits is %d, want %d", argmax(logits), genIDs[0])
		}
		for i := 0; i < 16 && i < len(genIDs); i++ {
			tok, err := s.Sample(abi.SampleParams{})
			if err != nil {
				return err
			}
			if tok != genIDs[i] {
				return fmt.Errorf("step %d: sampled %d, want %d", i, tok, genIDs[i])
			}
			if _, err := s.Decode([]int32{tok}); err != nil {
				return err
			}
		}
		// Rewind to the prompt: the next token is the first one again.
		if err := s.Truncate(len(promptIDs) - 1); err != nil {
			return err
		}
		if _, err := s.Decode(promptIDs[len(promptIDs)-1:]); err != nil {
			return err
		}
		tok, err := s.Sample(abi.SampleParams{})
		if err != nil {
			return err
		}
		if tok != genIDs[0] {
			return fmt.Errorf("after truncate: sampled %d, want %d", tok, genIDs[0])
		}
		return nil
	}())

	// Tensor ops routed to the backend, checked against plain Go.
	c.check("tensor_get_rows_matmul", func() error {
		w, err := m.Weight("token_embd.weight")
		if err != nil {
			return err
		}
		defer w.Free()
		shape, err := w.Shape()
		if err != nil {
			return err
		}
		cols, rows := shape[0], shape[1]
		rowsT, err := guest.Op("get_rows", &abi.OpParams{IDs: []int32{3, 7}}, w)
		if err != nil {
			return err
		}
		defer rowsT.Free()
		got, err := rowsT.Read()
		if err != nil {
			return err
		}
		// matmul by a one-hot vector picks column j of every row.
		const j = 5
		onehot := make([]float32, cols)
		onehot[j] = 1
		x, err := guest.NewTensor(onehot, cols, 1)
		if err != nil {
			return err
		}
		defer x.Free()
		y, err := guest.Op("matmul", nil, w, x)
		if err != nil {
			return err
		}
		defer y.Free()
		col, err := y.Read()
		if err != nil {
			return err
		}
		if len(got) != 2*cols || len(col) != rows {
			return fmt.Errorf("sizes %d and %d, want %d and %d", len(got), len(col), 2*cols, rows)
		}
		for k, r := range []int{3, 7} {
			if d := math.Abs(float64(col[r] - got[k*cols+j])); d > 1e-2*math.Max(1, math.Abs(float64(col[r]))) {
				return fmt.Errorf("matmul column %d row %d = %g, get_rows gives %g", j, r, col[r], got[k*cols+j])
			}
		}
		return nil
	}())
	c.check("tensor_elementwise", func() error {
		a := []float32{1, -2, 3, -4, 0.5, 6, -7}
		b := []float32{0.5, 0.25, -1, 2, 3, -0.5, 1}
		ta, err := guest.NewTensor(a, len(a))
		if err != nil {
			return err
		}
		defer ta.Free()
		tb, err := guest.NewTensor(b, len(b))
		if err != nil {
			return err
		}
		defer tb.Free()
		for _, op := range []string{"add", "mul", "silu", "softmax", "rmsnorm"} {
			ins := []*guest.Tensor{ta, tb}
			var params *abi.OpParams
			switch op {
			case "silu", "softmax":
				ins = ins[:1]
			case "rmsnorm":
				params = &abi.OpParams{Eps: 1e-5}
			}
			t, err := guest.Op(op, params, ins...)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			got, err := t.Read()
			t.Free()
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			want := expect(op, a, b)
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
					return fmt.Errorf("%s[%d] = %g, want %g", op, i, got[i], want[i])
				}
			}
		}
		return nil
	}())

	// Error paths.
	c.check("error_bad_name", wantErrno(func() error { _, err := guest.LoadModel("../x"); return err }(), abi.ErrnoInval))
	c.check("error_unknown_model", wantErrno(func() error { _, err := guest.LoadModel("no-such-model"); return err }(), abi.ErrnoNoent))
	c.check("error_closed_session", func() error {
		s, err := m.NewSession(16)
		if err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		_, err = s.Decode(promptIDs)
		return wantErrno(err, abi.ErrnoBadf)
	}())
	c.check("error_context_full", func() error {
		s, err := m.NewSession(4)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err := s.Decode([]int32{1, 2, 3, 4, 5}); !errors.Is(err, abi.Errno2big) {
			return fmt.Errorf("a 5-token batch into a 4-token session: got %v, want E2BIG", err)
		}
		if _, err := s.Decode([]int32{1, 2, 3}); err != nil {
			return err
		}
		_, err = s.Decode([]int32{4, 5})
		return wantErrno(err, abi.ErrnoCtxfull)
	}())
	c.check("error_op_shapes", func() error {
		ta, _ := guest.NewTensor([]float32{1, 2, 3}, 3)
		tb, _ := guest.NewTensor([]float32{1, 2}, 2)
		defer ta.Free()
		defer tb.Free()
		_, err := guest.Op("add", nil, ta, tb)
		return wantErrno(err, abi.ErrnoInval)
	}())

	// One-call generate streams the reference text to stdout.
	c.check("generate", func() error {
		n, err := m.Generate(promptText(m, promptIDs), abi.GenerateParams{MaxTokens: len(genIDs)})
		if err != nil {
			return err
		}
		if n != len(genIDs) {
			return fmt.Errorf("%d tokens, want %d", n, len(genIDs))
		}
		return nil
	}())

	c.check("unload", m.Unload())
	c.check("error_stale_model", wantErrno(func() error { _, err := m.Info(); return err }(), abi.ErrnoBadf))
	if c.failed > 0 {
		return 1
	}
	return 0
}

// promptText detokenizes the prompt ids (without BOS) to get the text
// that tokenizes back to them.
func promptText(m *guest.Model, ids []int32) string {
	s, err := m.Detokenize(ids[1:], 0)
	if err != nil {
		return ""
	}
	return s
}

func expect(op string, a, b []float32) []float32 {
	out := make([]float32, len(a))
	switch op {
	case "add":
		for i := range a {
			out[i] = a[i] + b[i]
		}
	case "mul":
		for i := range a {
			out[i] = a[i] * b[i]
		}
	case "silu":
		for i, v := range a {
			out[i] = float32(float64(v) / (1 + math.Exp(-float64(v))))
		}
	case "softmax":
		m := slices.Max(a)
		var sum float64
		for i, v := range a {
			e := math.Exp(float64(v - m))
			out[i] = float32(e)
			sum += e
		}
		for i := range out {
			out[i] = float32(float64(out[i]) / sum)
		}
	case "rmsnorm":
		var ss float64
		for _, v := range a {
			ss += float64(v) * float64(v)
		}
		scale := 1 / math.Sqrt(ss/float64(len(a))+1e-5)
		for i, v := range a {
			out[i] = float32(float64(v)*scale) * b[i]
		}
	}
	return out
}
