//go:build !linux

package cpuavx2

import "time"

// osThreadCPU returns −1: the thread's CPU time is read on Linux only, so
// elsewhere the pool keeps its quiet-machine behaviour.
func osThreadCPU() time.Duration { return -1 }
