package dispatcher

import (
	"strconv"
	"sync"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// clusterCache keeps what every session message derives from the cluster
// record — the trust bundle, the root's fingerprint (which parses its
// PEM), the gossip keyring and the versions a session compares — for the
// record last seen. Stored objects are immutable, so the same pointer is
// the same record; parsing the root on every session wake was a tenth of
// the manager's CPU with thousands of sessions.
type clusterCache struct {
	mu   sync.Mutex
	c    *minkepb.Cluster
	info *clusterInfo
}

// clusterInfo is what sessions take from one cluster record. Shared and
// never changed.
type clusterInfo struct {
	bundle      []byte
	fingerprint string
	keyring     *minkepb.GossipKeyring
	// caVersion and keyringVersion identify the roots and the keyring, so
	// that a session sends them again when they change and only then.
	caVersion, keyringVersion string
}

func (cc *clusterCache) get(c *minkepb.Cluster) *clusterInfo {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.info == nil || c == nil || c != cc.c {
		i := &clusterInfo{bundle: ca.TrustBundle(c), fingerprint: ca.PEMFingerprint(c.GetRootCa().GetCert()), keyring: gossipKeyring(c)}
		i.caVersion = "ca@" + i.fingerprint + "/" + strconv.Itoa(len(i.bundle))
		i.keyringVersion = keyringVersion(i.keyring)
		cc.c, cc.info = c, i
	}
	return cc.info
}
