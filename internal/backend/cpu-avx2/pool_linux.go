package cpuavx2

import "golang.org/x/sys/unix"

// involuntarySwitches returns how many times the calling OS thread was
// preempted (getrusage RUSAGE_THREAD ru_nivcsw), or −1 when unknown.
func involuntarySwitches() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return -1
	}
	return ru.Nivcsw
}
