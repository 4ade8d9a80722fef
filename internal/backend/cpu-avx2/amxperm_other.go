//go:build amd64 && !linux

package cpuavx2

// amxPermit reports false: the AMX tiles are used only on Linux, where
// the process can ask for the tile state permission.
func amxPermit() bool { return false }
