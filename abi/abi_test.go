package abi

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// TestErrnoStable pins the numbers and names: they are the ABI.
func TestErrnoStable(t *testing.T) {
	want := []string{"ESUCCESS", "EINVAL", "ENOENT", "EACCES", "EBADF", "E2BIG", "EFAULT", "ENOMEM",
		"EUNAVAIL", "EBACKEND", "EBADMODEL", "ECTXFULL", "ECANCELED", "ENOTSUP", "ELIMIT", "EIO"}
	all := Errnos()
	if len(all) != len(want) {
		t.Fatalf("%d errnos, want %d", len(all), len(want))
	}
	for i, e := range all {
		if int(e) != i || e.String() != want[i] {
			t.Errorf("errno %d = %s, want %s", i, e, want[i])
		}
		if !strings.HasPrefix(e.Error(), want[i]+": ") {
			t.Errorf("Error() = %q", e.Error())
		}
	}
	if got := Errno(99).String(); got != "errno(99)" {
		t.Errorf("unknown errno = %q", got)
	}
	var err error = ErrnoBadf
	if !errors.Is(err, ErrnoBadf) {
		t.Error("errors.Is on Errno")
	}
	if v, e := ParseResult(-4); v != 0 || e != ErrnoBadf {
		t.Errorf("ParseResult(-4) = %d, %s", v, e)
	}
	if v, e := ParseResult(7); v != 7 || e != ErrnoSuccess {
		t.Errorf("ParseResult(7) = %d, %s", v, e)
	}
}

func TestFuncsUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Funcs() {
		if !strings.HasPrefix(f, "realm_host_") || seen[f] {
			t.Errorf("bad or duplicate function name %q", f)
		}
		seen[f] = true
	}
	if Funcs()[0] != "realm_host_load_model_by_name" {
		t.Error("the first function must be realm_host_load_model_by_name")
	}
}

var nameRule = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

func TestCheckModelName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"stories260k", true}, {"tinyllama-1.1b_q4", true}, {"a", true}, {strings.Repeat("a", 128), true},
		{"", false}, {"../x", false}, {"/etc/passwd", false}, {"a/b", false}, {"x\x00y", false},
		{"a..b", false}, {".hidden", false}, {"-x", false}, {"Upper", false}, {"a b", false},
		{strings.Repeat("a", 129), false}, {`a\b`, false}, {"é", false},
	} {
		why := CheckModelName(c.name)
		if (why == "") != c.ok {
			t.Errorf("CheckModelName(%q) = %q, want ok=%v", c.name, why, c.ok)
		}
	}
}

// FuzzCheckModelName: the rule is the documented regexp minus "..".
func FuzzCheckModelName(f *testing.F) {
	for _, s := range []string{"stories260k", "../x", "a..b", "x\x00y", "A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := nameRule.MatchString(name) && !strings.Contains(name, "..")
		if got := CheckModelName(name) == ""; got != want {
			t.Errorf("CheckModelName(%q) ok=%v, want %v", name, got, want)
		}
	})
}
