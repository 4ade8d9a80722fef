package model_test

import (
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/model"
)

// activeBackend is a backend whose serving plugin changes (a supervisor
// that fell back to another plugin, or has none live).
type activeBackend struct {
	backends.Backend
	active string
}

func (a activeBackend) Active() string { return a.active }

// TestServing: a model names the backend serving it now, not the one
// that loaded it; with none live (an outage) or a backend that cannot
// say, the load-time name.
func TestServing(t *testing.T) {
	for _, c := range []struct {
		be   backends.Backend
		want string
	}{
		{activeBackend{active: "reference"}, "reference"},
		{activeBackend{active: ""}, "cpu-avx2"},
		{nil, "cpu-avx2"},
	} {
		m := &model.Model{Backend: c.be, BackendName: "cpu-avx2"}
		if got := m.Serving(); got != c.want {
			t.Errorf("%#v: Serving() = %q, want %q", c.be, got, c.want)
		}
		if got := model.ServingName(c.be, "cpu-avx2"); got != c.want {
			t.Errorf("%#v: ServingName = %q, want %q", c.be, got, c.want)
		}
	}
}

// TestShape: TensorShapes when the loader built them, else the backend's
// Info.TensorShapes.
func TestShape(t *testing.T) {
	info := backends.ModelInfo{TensorShapes: map[string][]int{"a": {2, 3}}}
	own := &model.Model{Info: info, TensorShapes: map[string][]int{"b": {4}}}
	if s, ok := own.Shape("b"); !ok || len(s) != 1 || s[0] != 4 {
		t.Errorf("own Shape(b) = %v, %v", s, ok)
	}
	if _, ok := own.Shape("a"); ok {
		t.Error("own Shape(a) fell back to Info although TensorShapes is set")
	}
	fallback := &model.Model{Info: info}
	if s, ok := fallback.Shape("a"); !ok || len(s) != 2 || s[1] != 3 {
		t.Errorf("fallback Shape(a) = %v, %v", s, ok)
	}
}
