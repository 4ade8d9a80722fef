//go:build wasip1

// Command hostile is a Go guest that misbehaves on request, for the
// host's tests:
//
//	hostile goroutines MODEL  call the ABI from 16 goroutines at once
//	hostile alloc             allocate memory without bound
//	hostile spin              loop forever
//	hostile flood             write to stdout without end
//	hostile panic MODEL       panic in the middle of a decode loop
//	hostile sleep             sleep for an hour (time.Sleep: poll_oneoff)
//
// Go's wasip1 port runs every goroutine on one thread: host calls from
// several goroutines interleave (at blocking points and preemption) but
// never overlap. Each goroutine must still see its own handles.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hostile MODE [MODEL]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "goroutines":
		goroutines(os.Args[2])
	case "alloc":
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 1<<20))
			keep[len(keep)-1][0] = 1
		}
	case "spin":
		n := 0
		for {
			n++
		}
	case "flood":
		line := []byte(strings.Repeat("x", 64<<10))
		for {
			os.Stdout.Write(line) // errors ignored on purpose: the host must stop us
		}
	case "sleep":
		time.Sleep(time.Hour)
		fmt.Println("woke up")
	case "panic":
		m, err := guest.LoadModel(os.Args[2])
		if err != nil {
			fail(err)
		}
		s, err := m.NewSession(16)
		if err != nil {
			fail(err)
		}
		ids := []int32{1, 403}
		for i := 0; ; i++ {
			if _, err := s.Decode(ids); err != nil {
				fail(err)
			}
			if i == 2 {
				var table map[string]int
				table["boom"] = 1 // panics: assignment to entry in nil map
			}
			ids = ids[:1]
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func goroutines(model string) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- oneGoroutine(model, i)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			fail(err)
		}
	}
	fmt.Printf("ok %d\n", n)
}

func oneGoroutine(model string, i int) error {
	m, err := guest.LoadModel(model)
	if err != nil {
		return err
	}
	defer m.Unload()
	runtime.Gosched()
	text := fmt.Sprintf("Once upon a time %d", i)
	ids, err := m.Tokenize(text, abi.TokenizeParseSpecial)
	if err != nil {
		return err
	}
	runtime.Gosched()
	s, err := m.NewSession(32)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Decode(ids); err != nil {
		return err
	}
	runtime.Gosched()
	back, err := m.Detokenize(ids, 0)
	if err != nil {
		return err
	}
	if strings.TrimPrefix(back, " ") != text {
		return fmt.Errorf("goroutine %d: round trip gave %q", i, back)
	}
	return nil
}
