package cluster

import (
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	ws := func(id string, loaded, loadable []string, load int, prefixes ...string) *WorkerState {
		return &WorkerState{ID: id, Loaded: loaded, Loadable: loadable, Running: load, Prefixes: prefixes}
	}
	m := []string{"m"}
	tests := []struct {
		name    string
		members []*WorkerState
		hashes  []string
		exclude map[string]bool
		rr      uint64
		want    string
	}{
		{"nobody serves", []*WorkerState{ws("a", nil, []string{"x"}, 0)}, nil, nil, 0, ""},
		{"the one that serves", []*WorkerState{ws("a", nil, []string{"x"}, 0), ws("b", nil, m, 9)}, nil, nil, 0, "b"},
		{"loaded wins over less loaded", []*WorkerState{ws("a", nil, m, 0), ws("b", m, m, 3)}, nil, nil, 0, "b"},
		{"guard: loaded but piled up", []*WorkerState{ws("a", nil, m, 0), ws("b", m, m, 4)}, nil, nil, 0, "a"},
		{"prefix wins over load", []*WorkerState{ws("a", nil, m, 0), ws("b", nil, m, 2, "h1")}, []string{"h1", "h2"}, nil, 0, "b"},
		{"longest prefix", []*WorkerState{ws("a", nil, m, 0, "h1"), ws("b", nil, m, 0, "h2")}, []string{"h1", "h2", "h3"}, nil, 0, "b"},
		{"guard: prefix but piled up", []*WorkerState{ws("a", nil, m, 0), ws("b", nil, m, 5, "h1")}, []string{"h1"}, nil, 0, "a"},
		{"loaded before prefix", []*WorkerState{ws("a", m, m, 0), ws("b", nil, m, 0, "h1")}, []string{"h1"}, nil, 0, "a"},
		{"least loaded", []*WorkerState{ws("a", nil, m, 2), ws("b", nil, m, 1), ws("c", nil, m, 3)}, nil, nil, 0, "b"},
		{"ties rotate 0", []*WorkerState{ws("a", nil, m, 1), ws("b", nil, m, 1)}, nil, nil, 0, "a"},
		{"ties rotate 1", []*WorkerState{ws("a", nil, m, 1), ws("b", nil, m, 1)}, nil, nil, 1, "b"},
		{"excluded", []*WorkerState{ws("a", m, m, 0), ws("b", nil, m, 0)}, nil, map[string]bool{"a": true}, 0, "b"},
		{"draining skipped", []*WorkerState{{ID: "a", Loaded: m, Draining: true}, ws("b", nil, m, 7)}, nil, nil, 0, "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := pick(tc.members, func(s *WorkerState) int { return s.Load() }, "m", tc.hashes, tc.exclude, DefaultPileGuard, tc.rr)
			id := ""
			if got != nil {
				id = got.ID
			}
			if id != tc.want {
				t.Errorf("picked %q, want %q", id, tc.want)
			}
		})
	}
}

func TestPrefixHashes(t *testing.T) {
	h := func(body string) []string { return PrefixHashes("m", parseHead([]byte(body))) }
	turn1 := h(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`)
	turn2 := h(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"}]}`)
	other := h(`{"messages":[{"role":"system","content":"be long"},{"role":"user","content":"hi"}]}`)
	if len(turn1) != 2 || len(turn2) != 4 || turn2[1] != turn1[1] || turn2[0] != turn1[0] {
		t.Errorf("turn 2 does not extend turn 1: %v %v", turn1, turn2)
	}
	if other[0] == turn1[0] {
		t.Errorf("different system prompts hash alike")
	}
	if PrefixHashes("n", parseHead([]byte(`{"messages":[{"role":"system","content":"be brief"}]}`)))[0] == turn1[0] {
		t.Errorf("the model is not part of the hash")
	}
	long := strings.Repeat("a", 3*prefixBlock+10)
	if got := h(`{"prompt":"` + long + `"}`); len(got) != 3 {
		t.Errorf("text prompt of %d bytes: %d hashes, want 3", len(long), len(got))
	}
	if got := h(`{"prompt":["short"]}`); len(got) != 0 {
		t.Errorf("short prompt: %v", got)
	}
	if parseHead([]byte(`not json`)) != nil {
		t.Errorf("non-JSON body parsed")
	}
}

func TestRelabel(t *testing.T) {
	in := "# HELP a_total A.\n# TYPE a_total counter\na_total 3\nb{x=\"1\"} 2\nc{} 1\n\n"
	var out strings.Builder
	seen := map[string]bool{}
	relabel(&out, strings.NewReader(in), "worker", "w1", seen)
	relabel(&out, strings.NewReader(in), "worker", "w2", seen)
	want := "# HELP a_total A.\n# TYPE a_total counter\na_total{worker=\"w1\"} 3\nb{worker=\"w1\",x=\"1\"} 2\nc{worker=\"w1\"} 1\n" +
		"a_total{worker=\"w2\"} 3\nb{worker=\"w2\",x=\"1\"} 2\nc{worker=\"w2\"} 1\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
