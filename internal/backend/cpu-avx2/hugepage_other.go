//go:build amd64 && !linux

package cpuavx2

// hugeAdvisor does nothing outside Linux.
type hugeAdvisor struct{}

func (h *hugeAdvisor) advise([]byte) {}
