//go:build !linux

package nodeinfo

// totalMemory is unknown off Linux: the node advertises no memory.
func totalMemory() int64 { return 0 }
