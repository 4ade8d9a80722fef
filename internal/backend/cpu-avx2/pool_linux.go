package cpuavx2

import (
	"time"

	"golang.org/x/sys/unix"
)

// osThreadCPU returns the CPU time of the calling OS thread, or −1 when
// unknown.
func osThreadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return -1
	}
	return time.Duration(ts.Nano())
}
