// Package workerapi holds what the worker and the managers' dispatcher
// share besides the generated protocol: the metadata key of the join token,
// the pool service VIPs come from, and the merging of a session's network
// state and deltas (NetworkView).
//
// It imports only the standard library and the generated protocol, so that
// the worker binary does not link the managers' store (Raft, BoltDB,
// go-memdb): each linked package's code and init work is resident in every
// worker.
package workerapi

import (
	"net/netip"
	"strconv"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TokenMetadataKey carries the join token on every worker call.
const TokenMetadataKey = "minke-token"

// VIPPool is where service virtual IPs come from. It must not overlap the
// workers' container subnets (172.29.0.0/16 by default).
var VIPPool = netip.MustParsePrefix("172.30.0.0/16")

// IngressKey identifies an ingress port in a NetworkDelta: its protocol and
// published port ("TCP/8080").
func IngressKey(p *minkepb.IngressPort) string {
	return p.GetPort().GetProtocol().String() + "/" + strconv.FormatUint(uint64(p.GetPort().GetPublishedPort()), 10)
}
