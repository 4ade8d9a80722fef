package core

import (
	"testing"

	"github.com/realmrt/realm/abi"
)

// TestHostImplsMatchABI: every abi function has a host implementation
// reading as many parameters as the abi table declares, and the host
// implements nothing the abi does not declare.
func TestHostImplsMatchABI(t *testing.T) {
	impls := hostImpls()
	declared := map[string]bool{}
	for _, f := range abi.Functions() {
		declared[f.Name] = true
		e, ok := impls[f.Name]
		switch {
		case !ok || e.impl == nil:
			t.Errorf("%s: declared in abi, no host implementation", f.Name)
		case e.nParams != len(f.Params):
			t.Errorf("%s: implementation reads %d parameters, abi declares %d", f.Name, e.nParams, len(f.Params))
		}
	}
	for name := range impls {
		if !declared[name] {
			t.Errorf("%s: implemented by the host, not declared in abi.Functions", name)
		}
	}
	if got, want := len(hostFuncs()), len(abi.Functions()); got != want {
		t.Errorf("hostFuncs has %d entries, abi %d", got, want)
	}
}
