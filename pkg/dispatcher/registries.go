package dispatcher

import (
	"slices"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// registryAddrs are the managers' built-in registries, sorted: a node
// pulls images pushed to the cluster from them with its certificate (the
// orchestrator names the leader's registry in a task's image).
func registryAddrs(tx raftstore.ReadTx) []string {
	var out []string
	for _, n := range tx.Nodes() {
		if a := n.GetManagerStatus().GetRegistryAddr(); a != "" && n.GetRole() == minkepb.NodeRole_MANAGER {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}
