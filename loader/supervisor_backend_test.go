package loader

import (
	"slices"
	"testing"

	"github.com/realmrt/realm/backends"
)

// TestHostModels checks the mapping of a plugin's model ids (Info's
// Preparing list) to the supervisor's: ids of the live instance's
// epoch only, failed and unknown ones dropped, sorted.
func TestHostModels(t *testing.T) {
	s := &Supervisor{models: map[backends.ModelID]*modelEntry{
		10: {inner: 1, epoch: 2},
		11: {inner: 2, epoch: 2},
		12: {inner: 3, epoch: 1}, // loaded into an earlier process
		13: {inner: 4, epoch: 2, err: backends.ErrNotFound},
	}}
	inst := &instance{epoch: 2}
	for _, c := range []struct{ in, want []backends.ModelID }{
		{nil, nil},
		{[]backends.ModelID{2, 1}, []backends.ModelID{10, 11}},
		{[]backends.ModelID{3, 4, 9}, nil},
	} {
		if got := s.hostModels(inst, c.in); !slices.Equal(got, c.want) {
			t.Errorf("hostModels(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
