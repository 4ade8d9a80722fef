// Package conformance is Realm's backend conformance suite: one set of
// checks run against every backend through the same backends.Backend
// interface production uses (normally a real plugin process), with the
// reference backend as the yardstick. It is modelled on llama.cpp's
// test-backend-ops: op cases over types and odd shapes compared by
// normalized mean squared error, model cases against llama.cpp's own
// logits, and fault cases for the plugin boundary.
//
// The suite is a library: tests/ runs it under `go test`, and
// `realm conformance` runs it from the CLI.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/realmrt/realm/backends"
)

// Status is the outcome of one case.
type Status string

// Case outcomes.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is the outcome of one case against one backend.
type Result struct {
	Kind   string  `json:"kind"` // "op", "model", "abi", "fault"
	Case   string  `json:"case"`
	Types  string  `json:"types,omitempty"`
	Shape  string  `json:"shape,omitempty"`
	NMSE   float64 `json:"nmse"`  // −1 where no NMSE applies
	Limit  float64 `json:"limit"` // 0 means exact
	Status Status  `json:"result"`
	Detail string  `json:"detail,omitempty"`
	Millis float64 `json:"ms"`
}

// Report is the suite's outcome for one backend.
type Report struct {
	Backend  string         `json:"backend"`
	Info     *backends.Info `json:"info,omitempty"`
	Results  []Result       `json:"results"`
	Passed   int            `json:"passed"`
	Failed   int            `json:"failed"`
	Skipped  int            `json:"skipped"`
	Reason   string         `json:"reason,omitempty"` // why the whole backend was skipped
	Duration float64        `json:"duration_s"`
}

// Add records a result and updates the counters.
func (r *Report) Add(res Result) {
	r.Results = append(r.Results, res)
	switch res.Status {
	case Pass:
		r.Passed++
	case Fail:
		r.Failed++
	default:
		r.Skipped++
	}
}

// Summary is the one-line summary CI greps for.
func (r *Report) Summary() string {
	s := fmt.Sprintf("%s: %d passed, %d failed, %d skipped", r.Backend, r.Passed, r.Failed, r.Skipped)
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}

// Options select what the suite runs.
type Options struct {
	// Filter keeps the cases whose name matches (nil: all).
	Filter *regexp.Regexp
	// Seed seeds the random inputs (0: a fixed default).
	Seed uint64
	// SkipModels leaves out the model cases.
	SkipModels bool
	// ReferenceDir is the llama.cpp reference data directory
	// (models/, outputs/); empty leaves out the model cases with a
	// skip reason.
	ReferenceDir string
	// ArchDir is the repository's testdata/arch (synthetic models of
	// every architecture with llama.cpp's outputs); empty leaves out the
	// architecture cases with a skip reason.
	ArchDir string
	// ABIGuest is the compiled ABI guest (internal/conformance/abiguest);
	// nil reports the ABI cases as skipped.
	ABIGuest []byte
}

// Run executes the op and model cases against sut, comparing op
// results with ref (the reference backend). It never stops early: every
// case gets a result.
func Run(ctx context.Context, name string, sut, ref backends.Backend, opts Options) *Report {
	start := time.Now()
	rep := &Report{Backend: name}
	info, err := sut.Info(ctx)
	if err != nil {
		rep.Add(Result{Kind: "info", Case: "info", NMSE: -1, Status: Fail, Detail: err.Error()})
		rep.Duration = time.Since(start).Seconds()
		return rep
	}
	rep.Info = info
	for _, c := range OpCases(opts.Seed) {
		if opts.Filter != nil && !opts.Filter.MatchString(c.Name) {
			continue
		}
		rep.Add(runOp(ctx, sut, ref, info, c))
	}
	if !opts.SkipModels {
		for _, mc := range ModelCases() {
			if opts.Filter != nil && !opts.Filter.MatchString(mc.Name) {
				continue
			}
			rep.Add(runModel(ctx, sut, opts.ReferenceDir, mc))
		}
		for _, name := range ArchCases() {
			if opts.Filter != nil && !opts.Filter.MatchString("arch/"+strings.Replace(name, "-", "/", 1)) {
				continue
			}
			rep.Add(runArch(ctx, sut, opts.ArchDir, name))
		}
		for _, name := range EmbedCases() {
			if opts.Filter != nil && !opts.Filter.MatchString("embed/"+name) {
				continue
			}
			rep.Add(runEmbed(ctx, sut, opts.ArchDir, name))
		}
	}
	rep.Duration = time.Since(start).Seconds()
	return rep
}

// supportsOp reports whether the backend's Info lists op.
func supportsOp(info *backends.Info, op string) bool {
	for _, o := range info.Ops {
		if o == op {
			return true
		}
	}
	return false
}

// runOp executes one op case on both backends and compares.
func runOp(ctx context.Context, sut, ref backends.Backend, info *backends.Info, c OpCase) Result {
	res := Result{Kind: "op", Case: c.Name, Types: c.Types, Shape: c.Shape, NMSE: -1, Limit: c.Limit}
	if !supportsOp(info, c.Req.Op) {
		res.Status, res.Detail = Skip, fmt.Sprintf("backend does not declare op %q", c.Req.Op)
		return res
	}
	start := time.Now()
	want, err := ref.TensorOp(ctx, c.Req)
	if err != nil {
		res.Status, res.Detail = Fail, fmt.Sprintf("reference backend failed: %v", err)
		return res
	}
	got, err := sut.TensorOp(ctx, c.Req)
	res.Millis = float64(time.Since(start).Microseconds()) / 1000
	switch {
	case errors.Is(err, backends.ErrUnsupported):
		res.Status, res.Detail = Skip, "unsupported: "+err.Error()
		return res
	case err != nil:
		res.Status, res.Detail = Fail, err.Error()
		return res
	}
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		res.Status, res.Detail = Fail, fmt.Sprintf("shape %v, want %v", got.Shape, want.Shape)
		return res
	}
	nmse, detail := Compare(got.Data, want.Data, c.Limit)
	res.NMSE = nmse
	if detail != "" {
		res.Status, res.Detail = Fail, detail
		return res
	}
	res.Status = Pass
	return res
}

// Compare checks got against the reference want. limit 0 demands exact
// equality; otherwise the normalized mean squared error over finite
// reference values must not exceed limit. NaN in got always fails, and
// infinities must match the reference's in sign. It returns the NMSE
// and, on failure, a description of the first problem.
func Compare(got, want []float32, limit float64) (float64, string) {
	if len(got) != len(want) {
		return -1, fmt.Sprintf("%d values, want %d", len(got), len(want))
	}
	var num, den float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		switch {
		case math.IsNaN(g):
			return -1, fmt.Sprintf("NaN at %d (want %g)", i, w)
		case math.IsInf(w, 0) || math.IsInf(g, 0):
			if g != w {
				return -1, fmt.Sprintf("value %g at %d, want %g (infinities must match in sign)", g, i, w)
			}
			continue
		case limit == 0 && got[i] != want[i]:
			return -1, fmt.Sprintf("value %g at %d, want exactly %g", g, i, w)
		}
		d := g - w
		num += d * d
		den += w * w
	}
	nmse := 0.0
	switch {
	case den > 0:
		nmse = num / den
	case num > 0:
		nmse = math.Inf(1)
	}
	if nmse > limit {
		return nmse, fmt.Sprintf("NMSE %.3g exceeds %.3g", nmse, limit)
	}
	return nmse, ""
}

// WriteTable prints a report as an aligned table followed by its summary.
func WriteTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "== %s\n", rep.Backend)
	if rep.Reason == "" || len(rep.Results) > 0 {
		fmt.Fprintln(tw, "CASE\tTYPES\tSHAPE\tNMSE\tLIMIT\tRESULT\tDETAIL")
	}
	for _, r := range rep.Results {
		nmse := "-"
		if r.NMSE >= 0 {
			nmse = fmt.Sprintf("%.2e", r.NMSE)
		}
		limit := "exact"
		switch {
		case r.Limit > 0:
			limit = fmt.Sprintf("%.0e", r.Limit)
		case r.NMSE < 0 && r.Limit == 0 && r.Kind != "op":
			limit = "-"
		}
		detail := r.Detail
		if len(detail) > 100 {
			detail = detail[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Case, r.Types, r.Shape, nmse, limit, strings.ToUpper(string(r.Status)), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s in %.1fs\n", rep.Summary(), rep.Duration)
	return err
}

// WriteJSON writes reports as one JSON document.
func WriteJSON(w io.Writer, reps []*Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Backends []*Report `json:"backends"`
	}{reps})
}

// Matrix is the support matrix of one backend: op → type → supported.
type Matrix struct {
	Backend string
	Ops     []string
	Types   []string
	Native  map[string]bool // type name → native kernel
}

// SupportMatrix builds the op × type matrix a backend declares.
func SupportMatrix(name string, info *backends.Info) Matrix {
	m := Matrix{Backend: name, Native: map[string]bool{}}
	m.Ops = append(m.Ops, info.Ops...)
	sort.Strings(m.Ops)
	for _, t := range info.Types {
		m.Types = append(m.Types, t.String())
		m.Native[t.String()] = true
	}
	return m
}
