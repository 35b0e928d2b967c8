package dispatcher

import (
	"bytes"
	"slices"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/membership"
)

// gossipKeyring is the keyring every node of cluster c must hold (see the
// rotation protocol in controlapi's gossip.go). Sessions carry it so that
// workers follow a key rotation.
func gossipKeyring(c *minkepb.Cluster) *minkepb.GossipKeyring {
	primary := c.GetGossipKey()
	if len(primary) == 0 {
		return nil
	}
	keys := c.GetGossipKeys()
	if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, primary) }) {
		keys = append([][]byte{primary}, keys...)
	}
	return &minkepb.GossipKeyring{Primary: primary, Keys: keys}
}

// keyringVersion identifies a keyring by fingerprints, so that a session
// resends when the keyring changes and only then.
func keyringVersion(kr *minkepb.GossipKeyring) string {
	parts := []string{"gossip"}
	if kr != nil {
		parts = append(parts, membership.KeyFingerprint(kr.GetPrimary()))
		for _, k := range kr.GetKeys() {
			parts = append(parts, membership.KeyFingerprint(k))
		}
	}
	return strings.Join(parts, "@")
}
