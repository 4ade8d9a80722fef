package engine

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
)

func TestRegistryLifecycle(t *testing.T) {
	r := NewRegistry[string, int]("test")
	m1 := r.AddModel("a")
	m2 := r.AddModel("b")
	if m1 == m2 {
		t.Fatalf("duplicate model ids %d", m1)
	}
	s1, err := r.AddSession(m1, 10)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.AddSession(m1, 20)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := r.AddSession(m2, 30)
	if err != nil {
		t.Fatal(err)
	}
	if v, release, err := r.Model(m2); err != nil || v != "b" {
		t.Fatalf("Model(m2) = %q, %v", v, err)
	} else {
		release()
	}
	if v, release, err := r.Session(s2); err != nil || v != 20 {
		t.Fatalf("Session(s2) = %d, %v", v, err)
	} else {
		release()
	}
	var closed []int
	if err := r.RemoveSession(s1, func(s int) { closed = append(closed, s) }); err != nil {
		t.Fatal(err)
	}
	var freedModel string
	var freedSessions []int
	if err := r.RemoveModel(m1, func(m string, ss []int) error {
		freedModel, freedSessions = m, ss
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if freedModel != "a" || len(freedSessions) != 1 || freedSessions[0] != 20 || len(closed) != 1 || closed[0] != 10 {
		t.Fatalf("freed model %q sessions %v, closed %v; want a, [20], [10]", freedModel, freedSessions, closed)
	}
	var models, sessions int
	r.Range(func(backends.ModelID, string) { models++ }, func(backends.SessionID, int) { sessions++ })
	if models != 1 || sessions != 1 {
		t.Fatalf("Range saw %d models and %d sessions, want 1 and 1", models, sessions)
	}

	notFound := []struct {
		name string
		call func() error
	}{
		{"model after remove", func() error { _, _, err := r.Model(m1); return err }},
		{"unknown model", func() error { _, _, err := r.Model(99); return err }},
		{"remove twice", func() error { return r.RemoveModel(m1, nil) }},
		{"session of removed model", func() error { _, _, err := r.Session(s2); return err }},
		{"closed session", func() error { _, _, err := r.Session(s1); return err }},
		{"close twice", func() error { return r.RemoveSession(s1, nil) }},
		{"close session of removed model", func() error { return r.RemoveSession(s2, nil) }},
		{"add session to removed model", func() error { _, err := r.AddSession(m1, 1); return err }},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, backends.ErrNotFound) || !strings.HasPrefix(err.Error(), "test: ") {
				t.Fatalf("err = %v, want a test: ... ErrNotFound", err)
			}
		})
	}
	if _, release, err := r.Session(s3); err != nil {
		t.Fatalf("Session(s3): %v", err)
	} else {
		release()
	}
}

func TestRegistryRemoveModelError(t *testing.T) {
	r := NewRegistry[int, int]("test")
	id := r.AddModel(1)
	want := errors.New("unmap failed")
	if err := r.RemoveModel(id, func(int, []int) error { return want }); !errors.Is(err, want) {
		t.Fatalf("RemoveModel = %v, want %v", err, want)
	}
}

func TestRegistryRemoveWaitsForUsers(t *testing.T) {
	r := NewRegistry[int, int]("test")
	id := r.AddModel(1)
	sid, err := r.AddSession(id, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, release, err := r.Session(sid)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.RemoveModel(id, nil); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
		t.Fatal("RemoveModel returned while a session call held the model")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-done
}

func TestRegistrySessionSize(t *testing.T) {
	r := NewRegistry[int, int]("test")
	for _, tc := range []struct {
		def, nCtx, train, want int
		err                    error
	}{
		{def: 2048, nCtx: 0, train: 512, want: 512},
		{def: 256, nCtx: -1, train: 512, want: 256},
		{def: 2048, nCtx: 100, train: 512, want: 100},
		{def: 2048, nCtx: 512, train: 512, want: 512},
		{def: 2048, nCtx: 513, train: 512, err: backends.ErrInvalidArgument},
	} {
		got, err := r.SessionSize(tc.def, tc.nCtx, tc.train)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("SessionSize(%d, %d, %d) = %d, %v; want %d, %v", tc.def, tc.nCtx, tc.train, got, err, tc.want, tc.err)
		}
	}
}

func TestCheckBatch(t *testing.T) {
	for _, tc := range []struct {
		name                string
		tokens              []int32
		nVocab, start, nCtx int
		err                 error
	}{
		{"ok", []int32{0, 9}, 10, 0, 4, nil},
		{"fills the context", []int32{1, 2}, 10, 2, 4, nil},
		{"empty", nil, 10, 0, 4, backends.ErrInvalidArgument},
		{"negative token", []int32{-1}, 10, 0, 4, backends.ErrInvalidArgument},
		{"token past vocab", []int32{10}, 10, 0, 4, backends.ErrInvalidArgument},
		{"context full", []int32{1, 2, 3}, 10, 2, 4, backends.ErrContextFull},
	} {
		if err := CheckBatch(tc.tokens, tc.nVocab, tc.start, tc.nCtx); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestTruncateTokens(t *testing.T) {
	for _, tc := range []struct {
		n, want int
		ok      bool
	}{{0, 0, true}, {2, 2, true}, {3, 3, true}, {4, 3, false}, {-1, 3, false}} {
		got, err := TruncateTokens([]int32{1, 2, 3}, tc.n)
		if (err == nil) != tc.ok || len(got) != tc.want || (!tc.ok && !errors.Is(err, backends.ErrInvalidArgument)) {
			t.Errorf("TruncateTokens(3 tokens, %d) = %d tokens, %v", tc.n, len(got), err)
		}
	}
}

// TestRegistryConcurrent races lookups and session calls against
// RemoveModel (run with -race): every call either succeeds on a live
// model or fails with ErrNotFound.
func TestRegistryConcurrent(t *testing.T) {
	type payload struct{ alive bool }
	r := NewRegistry[*payload, *payload]("test")
	for range 20 {
		m := &payload{alive: true}
		id := r.AddModel(m)
		sid, err := r.AddSession(id, &payload{alive: true})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if v, release, err := r.Model(id); err == nil {
						if !v.alive {
							t.Error("Model returned a freed model")
						}
						release()
					} else if !errors.Is(err, backends.ErrNotFound) {
						t.Error(err)
					}
					if s, release, err := r.Session(sid); err == nil {
						if !s.alive {
							t.Error("Session returned a freed session")
						}
						release()
					} else if !errors.Is(err, backends.ErrNotFound) {
						t.Error(err)
					}
					if _, err := r.AddSession(id, &payload{alive: true}); err != nil && !errors.Is(err, backends.ErrNotFound) {
						t.Error(err)
					}
				}
			}()
		}
		if err := r.RemoveModel(id, func(m *payload, ss []*payload) error {
			m.alive = false
			for _, s := range ss {
				s.alive = false
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}
