//go:build !linux

package manager

// totalMemory is unknown off Linux: the node advertises no memory.
func totalMemory() int64 { return 0 }
