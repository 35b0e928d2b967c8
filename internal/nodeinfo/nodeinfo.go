// Package nodeinfo describes the machine a node runs on. It is its own
// small package so that the worker binary can describe itself without
// linking the manager (pkg/manager).
package nodeinfo

import (
	"os"
	"runtime"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Describe reports this machine: hostname (or the override), platform, and
// all its CPUs and memory as the node's resources.
func Describe(hostname string) *minkepb.NodeDescription {
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return &minkepb.NodeDescription{
		Hostname:  hostname,
		Platform:  &minkepb.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources: &minkepb.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: totalMemory()},
	}
}
