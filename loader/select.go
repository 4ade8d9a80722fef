package loader

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/realmrt/realm/backends"
)

// Selection errors.
var (
	// ErrNoBackend: no declared backend can run on this machine.
	ErrNoBackend = errors.New("no usable backend")
	// ErrPin: the pinned backend is unknown or cannot run here.
	ErrPin = errors.New("pinned backend unusable")
)

// ProbeResult is what the caller found out about a backend outside the
// pure selection: whether its binary exists and, for backends with
// probe = true, what starting the plugin and asking it said.
type ProbeResult struct {
	// BinaryErr says why the plugin binary cannot be started ("binary not
	// built: run make (bin/realm-backend-x)"); empty when it can.
	BinaryErr string `json:"binary_error,omitempty"`
	// Probed reports that the plugin was started and asked.
	Probed bool `json:"probed"`
	// Veto, when not empty, is why the probe rejects the backend (no
	// device, self-test failed, plugin did not start, ...).
	Veto string `json:"veto,omitempty"`
	// Software reports that the only device is a software rasterizer
	// (lavapipe/llvmpipe, SwiftShader): usable, but ranked below the CPU
	// backends unless pinned.
	Software bool `json:"software,omitempty"`
	// Info is what the plugin reported, when probed.
	Info *backends.Info `json:"info,omitempty"`
}

// FeatureCheck is one declared CPU feature and whether the machine has it.
type FeatureCheck struct {
	Name     string `json:"name"`
	Detected bool   `json:"detected"`
}

// Candidate is one declared backend as the selection saw it.
type Candidate struct {
	Name     string         `json:"name"`
	Arch     string         `json:"arch"`
	Binary   string         `json:"binary"`
	GPU      bool           `json:"gpu"`
	Priority int            `json:"priority"`
	Requires []FeatureCheck `json:"requires"`
	Prefers  []FeatureCheck `json:"prefers,omitempty"`
	// Score counts the detected declared features (required and
	// preferred); 0 when a required feature is missing.
	Score int `json:"score"`
	// Eligible reports that the backend can run here.
	Eligible bool `json:"eligible"`
	// Reason says why the backend is not eligible, or notes how its rank
	// was adjusted (software device).
	Reason string `json:"reason,omitempty"`
	// Software reports a probe that found only a software device.
	Software bool `json:"software,omitempty"`
	// Rank is the 1-based position in the fallback order (0: not in it).
	Rank int `json:"rank"`
	// Probe is the probe result, when one ran.
	Probe *ProbeResult `json:"probe,omitempty"`
}

// Decision is the outcome of Select: every candidate (eligible ones in
// rank order, then the others in config order), the chosen backend and
// why, and the fallback order.
type Decision struct {
	Machine    Machine     `json:"machine"`
	Pin        string      `json:"pin,omitempty"`
	Candidates []Candidate `json:"candidates"`
	// Chosen is the selected backend, "" when none can run.
	Chosen string `json:"chosen"`
	// Why explains the choice.
	Why string `json:"why"`
	// Order is Chosen followed by the fallbacks, best first. A pin
	// leaves only the pinned backend.
	Order []string `json:"order"`
}

// Candidate returns the named candidate.
func (d *Decision) Candidate(name string) (*Candidate, bool) {
	for i := range d.Candidates {
		if d.Candidates[i].Name == name {
			return &d.Candidates[i], true
		}
	}
	return nil, false
}

// staticReasons lists why b cannot run on m judging by arch and CPU
// features alone (no file system, no probe).
func staticReasons(m *Machine, b *BackendConfig) []string {
	if b.Arch != ArchAny && b.Arch != m.Arch {
		// Feature names of another architecture mean nothing here.
		return []string{fmt.Sprintf("wrong arch: built for %s, machine is %s", b.Arch, m.Arch)}
	}
	var reasons []string
	var missing []string
	for _, f := range b.Requires {
		if !m.Has(f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		reasons = append(reasons, "missing feature "+strings.Join(missing, ", "))
	}
	return reasons
}

// Select ranks the backends of cfg for machine m. It is a pure function:
// probes carries what the caller found out by touching the system (binary
// present, probe verdict), keyed by backend name; a backend with probe =
// true and no probe result is not eligible.
//
// Eligible backends rank by: software device last, then priority (higher
// first), then GPU before CPU, then feature score (higher first), then
// name. pin, when not empty, selects that backend alone; a pin that is
// unknown or cannot run is an error wrapping ErrPin that says why. When no
// backend is eligible the error wraps ErrNoBackend. The Decision is filled
// in either way, so that the table can be shown.
func Select(m Machine, cfg *Config, probes map[string]ProbeResult, pin string) (Decision, error) {
	d := Decision{Machine: m, Pin: pin}
	var eligible, other []Candidate
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		c := Candidate{
			Name: b.Name, Arch: b.Arch, Binary: b.Binary, GPU: b.GPU, Priority: b.Priority,
			Requires: []FeatureCheck{},
		}
		allRequired := true
		for _, f := range b.Requires {
			has := m.Has(f)
			c.Requires = append(c.Requires, FeatureCheck{f, has})
			if has {
				c.Score++
			} else {
				allRequired = false
			}
		}
		for _, f := range b.Prefers {
			has := m.Has(f)
			c.Prefers = append(c.Prefers, FeatureCheck{f, has})
			if has {
				c.Score++
			}
		}
		reasons := staticReasons(&m, b)
		if !allRequired || b.Arch != ArchAny && b.Arch != m.Arch {
			c.Score = 0
		}
		p, havePR := probes[b.Name]
		if havePR && p.BinaryErr != "" && (b.Arch == ArchAny || b.Arch == m.Arch) {
			reasons = append(reasons, p.BinaryErr)
		}
		if havePR && p.Probed {
			pc := p
			c.Probe = &pc
		}
		if b.Probe && len(reasons) == 0 {
			switch {
			case !havePR || !p.Probed:
				reasons = append(reasons, "not probed")
			case p.Veto != "":
				reasons = append(reasons, "vetoed by probe: "+p.Veto)
			case p.Software:
				c.Software = true
			}
		}
		if len(reasons) > 0 {
			c.Reason = strings.Join(reasons, "; ")
			other = append(other, c)
			continue
		}
		c.Eligible = true
		if c.Software {
			c.Reason = "software device: ranked below CPU backends"
			if c.Probe != nil && c.Probe.Info != nil && len(c.Probe.Info.Devices) > 0 {
				d := c.Probe.Info.Devices[0]
				c.Reason = fmt.Sprintf("software device %q (%s): ranked below CPU backends", d.Name, d.Kind)
			}
		}
		eligible = append(eligible, c)
	}
	slices.SortStableFunc(eligible, compareCandidates)
	for i := range eligible {
		eligible[i].Rank = i + 1
	}
	d.Candidates = append(eligible, other...)

	if pin != "" {
		c, ok := d.Candidate(pin)
		if !ok {
			names := make([]string, len(cfg.Backends))
			for i, b := range cfg.Backends {
				names[i] = b.Name
			}
			return d, fmt.Errorf("%w: backend %q is not declared (declared: %s)", ErrPin, pin, strings.Join(names, ", "))
		}
		if !c.Eligible {
			return d, fmt.Errorf("%w: backend %q cannot run here: %s", ErrPin, pin, c.Reason)
		}
		d.Chosen, d.Order = pin, []string{pin}
		d.Why = "pinned"
		if c.Software {
			d.Why = "pinned (software device)"
		}
		return d, nil
	}
	if len(eligible) == 0 {
		var why []string
		for _, c := range other {
			why = append(why, c.Name+": "+c.Reason)
		}
		return d, fmt.Errorf("%w: %s", ErrNoBackend, strings.Join(why, "; "))
	}
	for _, c := range eligible {
		d.Order = append(d.Order, c.Name)
	}
	d.Chosen = eligible[0].Name
	d.Why = explain(eligible)
	return d, nil
}

// compareCandidates orders eligible candidates, best first.
func compareCandidates(a, b Candidate) int {
	switch {
	case a.Software != b.Software:
		return boolCmp(a.Software, b.Software)
	case a.Priority != b.Priority:
		return b.Priority - a.Priority
	case a.GPU != b.GPU:
		return boolCmp(b.GPU, a.GPU)
	case a.Score != b.Score:
		return b.Score - a.Score
	}
	return strings.Compare(a.Name, b.Name)
}

// boolCmp orders false before true.
func boolCmp(a, b bool) int {
	if a == b {
		return 0
	}
	if a {
		return 1
	}
	return -1
}

// explain says why ranked[0] beat ranked[1].
func explain(ranked []Candidate) string {
	w := ranked[0]
	if len(ranked) == 1 {
		if w.Software {
			return "only eligible backend (software device)"
		}
		return "only eligible backend"
	}
	r := ranked[1]
	switch {
	case w.Software != r.Software:
		return fmt.Sprintf("%s runs on a software device, ranked below CPU backends", r.Name)
	case w.Priority != r.Priority:
		return fmt.Sprintf("highest priority (%d > %s's %d)", w.Priority, r.Name, r.Priority)
	case w.GPU != r.GPU:
		return fmt.Sprintf("GPU ranks above CPU at equal priority (%d, vs %s)", w.Priority, r.Name)
	case w.Score != r.Score:
		return fmt.Sprintf("higher feature score at equal priority (%d > %s's %d)", w.Score, r.Name, r.Score)
	}
	return fmt.Sprintf("ties with %s on priority and score; first by name", r.Name)
}
