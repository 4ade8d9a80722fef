//go:build !(linux || darwin || freebsd)

package chat

// limitMemory is a no-op where the process cannot cap its address space;
// the parent's time limit still ends a runaway render.
func limitMemory(extra uint64) {}
