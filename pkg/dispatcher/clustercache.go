package dispatcher

import (
	"sync"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// clusterCache keeps what every session message derives from the cluster
// record — the trust bundle, the root's fingerprint (which parses its
// PEM) and the gossip keyring — for the record last seen. Stored objects
// are immutable, so the same pointer is the same record; parsing the root
// on every session wake was a tenth of the manager's CPU with thousands of
// sessions.
type clusterCache struct {
	mu          sync.Mutex
	c           *minkepb.Cluster
	bundle      []byte
	fingerprint string
	keyring     *minkepb.GossipKeyring
}

func (cc *clusterCache) get(c *minkepb.Cluster) (bundle []byte, fingerprint string, keyring *minkepb.GossipKeyring) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if c == nil || c != cc.c {
		cc.c, cc.bundle, cc.fingerprint, cc.keyring = c, ca.TrustBundle(c), ca.PEMFingerprint(c.GetRootCa().GetCert()), gossipKeyring(c)
	}
	return cc.bundle, cc.fingerprint, cc.keyring
}
