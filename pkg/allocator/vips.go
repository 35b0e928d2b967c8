package allocator

import (
	"fmt"
	"hash/fnv"
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
// a free address of VIPPool (others' VIPs are taken; the network and
// broadcast addresses are never used). The search starts at an address
// derived from the service's ID, so creates running at once, each reading
// a store without the others', rarely pick the same one; the store refuses
// a commit that would hand one out twice (raftstore.ClusterVIPNetwork), and
// the loser allocates again. The choice is a pure function of its
// arguments.
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
	base := VIPPool.Masked().Addr().As4()
	first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	size := uint32(1)<<(32-VIPPool.Bits()) - 2 // less the network and broadcast addresses
	h := fnv.New32a()
	_, _ = h.Write([]byte(serviceID))
	start := h.Sum32() % size
	for i := uint32(0); i < size; i++ {
		n := first + 1 + (start+i)%size
		a := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		if !used[a] {
			return a.String(), nil
		}
	}
	return "", ErrNoVIPs
}
