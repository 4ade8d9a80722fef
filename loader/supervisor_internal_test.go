package loader

import (
	"slices"
	"strings"
	"testing"
)

func TestStderrTail(t *testing.T) {
	tail := newStderrTail(6)
	input := strings.Join([]string{
		`{"@level":"debug","@message":"noise","@module":"p"}`,
		`{"@level":"error","@message":"load failed","error":"bad magic","@module":"p"}`,
		`some C library line`,
		`panic: boom`,
		``,
		`goroutine 1 [running]:`,
		`main.f()`,
		`	/src/main.go:3 +0x1`,
		`main.main()`,
		`	/src/main.go:9 +0x2`,
	}, "\n") + "\n"
	// Byte by byte, as go-plugin may split writes anywhere.
	for i := range len(input) {
		if _, err := tail.Write([]byte{input[i]}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"load failed error=bad magic", "some C library line", "panic: boom", "goroutine 1 [running]:", "main.f()", "/src/main.go:3 +0x1"}
	if got := tail.lines(); !slices.Equal(got, want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
	for range 10 {
		tail.Write([]byte(`{"@level":"error","@message":"again"}` + "\n"))
	}
	if got := tail.lines(); len(got) != 6 || got[5] != "again" {
		t.Fatalf("ring: %q", got)
	}
}
