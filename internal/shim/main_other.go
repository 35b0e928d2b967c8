//go:build !linux

package shim

// Main returns at once: containers run only on Linux.
func Main() {}
