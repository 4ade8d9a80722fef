//go:build !linux

package cpuavx2

// involuntarySwitches returns −1: the count is read on Linux only, so
// elsewhere the pool keeps its quiet-machine spinning.
func involuntarySwitches() int64 { return -1 }
