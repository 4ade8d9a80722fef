package server

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/model"
)

// switchingBackend is a supervised backend whose live plugin changes
// (fallback, fail-back, outage); Decode answers at once.
type switchingBackend struct {
	backends.Backend
	active atomic.Value // string
}

func (b *switchingBackend) Active() string { return b.active.Load().(string) }
func (b *switchingBackend) Decode(context.Context, backends.DecodeRequest) (*backends.DecodeResult, error) {
	return &backends.DecodeResult{}, nil
}

// oneModel hands out one model and records what comes back.
type oneModel struct {
	m        *model.Model
	released []*model.Model
}

func (o *oneModel) Acquire(context.Context, string) (*model.Model, error) { return o.m, nil }
func (o *oneModel) Release(m *model.Model)                                { o.released = append(o.released, m) }
func (o *oneModel) List(context.Context) ([]string, error)                { return []string{o.m.Name}, nil }

// TestInstrumentedServing: the model the host gets through the metrics
// wrapper still names the plugin serving now (model_info), its decodes
// are labelled with it, and Release gives the cache back its own model.
func TestInstrumentedServing(t *testing.T) {
	be := &switchingBackend{}
	be.active.Store("cpu-avx2")
	inner := &oneModel{m: &model.Model{Name: "m", Backend: be, BackendName: "cpu-avx2"}}
	met := NewMetrics()
	models := InstrumentModels(inner, met)
	got, err := models.Acquire(context.Background(), "m")
	if err != nil {
		t.Fatal(err)
	}
	be.active.Store("reference") // the supervisor fell back
	if s := got.Serving(); s != "reference" {
		t.Errorf("Serving() through the wrapper = %q, want the live plugin %q", s, "reference")
	}
	if _, err := got.Backend.Decode(context.Background(), backends.DecodeRequest{}); err != nil {
		t.Fatal(err)
	}
	_, text := scrape(t, met.Handler(), "")
	if want := `realm_backend_decodes_total{backend="reference",model="m"} 1`; !strings.Contains(text, want) {
		t.Errorf("exposition lacks %s:\n%s", want, text)
	}
	models.Release(got)
	models.Release(got) // a second release of the same copy is not passed on
	if len(inner.released) != 1 || inner.released[0] != inner.m {
		t.Errorf("inner released %v, want once its own model %p", inner.released, inner.m)
	}
}

// outageBackend is a supervisor with no plugin live.
type outageBackend struct{ restarts int }

func (outageBackend) Active() string  { return "" }
func (o outageBackend) Restarts() int { return o.restarts }
func (outageBackend) PID() int        { return 0 }
func (outageBackend) Info(context.Context) (*backends.Info, error) {
	return nil, errors.New("no plugin")
}

// TestBackendLabelInOutage: while no plugin serves, the backend metrics
// keep the name selected at start instead of an empty label.
func TestBackendLabelInOutage(t *testing.T) {
	met := NewMetrics()
	s := &Server{sup: outageBackend{restarts: 3}, chosen: "cpu-avx2", metrics: met, limiters: map[string]*limiter{}}
	met.reg.MustRegister(stateCollector{s})
	_, text := scrape(t, met.Handler(), "")
	for _, want := range []string{
		`realm_backend_up{backend="cpu-avx2"} 0`,
		`realm_backend_restarts_total{backend="cpu-avx2"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(text, `backend=""`) {
		t.Errorf("an empty backend label:\n%s", text)
	}
	if n := s.backendName(); n != "cpu-avx2" {
		t.Errorf("backendName() = %q", n)
	}
}
