//go:build wasip1

// Command sleeper is a test app for realm serve: it writes "start",
// sleeps for 1.5s (a request in flight that does not touch the
// backend) and writes " end", so that a shutdown can be seen to wait
// for it.
package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	io.Copy(io.Discard, os.Stdin)
	fmt.Print("start")
	time.Sleep(1500 * time.Millisecond)
	fmt.Print(" end")
}
