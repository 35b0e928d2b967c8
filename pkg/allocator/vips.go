package allocator

import (
	"fmt"
	"net/netip"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/workerapi"
)

// VIPPool is where service virtual IPs come from (workerapi.VIPPool,
// which workers program too).
var VIPPool = workerapi.VIPPool

// ErrNoVIPs: every address of VIPPool is taken.
var ErrNoVIPs = fmt.Errorf("allocator: no free virtual IP in %s", VIPPool)

// AllocateVIP returns the service's virtual IP: prev's if it had one, else
// the lowest free address of VIPPool (others' VIPs are taken). An
// allocation is a pure function of the store's content, so the leader's
// commit makes it unique.
func AllocateVIP(serviceID string, prev *minkepb.Endpoint, others []*minkepb.Service) (string, error) {
	if v := prev.GetVirtualIp(); v != "" {
		return v, nil
	}
	used := map[netip.Addr]bool{}
	for _, s := range others {
		if s.GetMeta().GetId() == serviceID {
			continue
		}
		if a, err := netip.ParseAddr(s.GetEndpoint().GetVirtualIp()); err == nil {
			used[a] = true
		}
	}
	for a := VIPPool.Addr().Next(); VIPPool.Contains(a); a = a.Next() {
		if !used[a] && VIPPool.Contains(a.Next()) { // skip the broadcast address
			return a.String(), nil
		}
	}
	return "", ErrNoVIPs
}
