package membership

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Roles a node can advertise in its Meta.
const (
	RoleManager = "manager"
	RoleWorker  = "worker"
)

// Meta is what a node tells the cluster about itself through gossip. It is
// carried in memberlist's node meta, so its encoding must stay within
// memberlist.MetaMaxSize (512 bytes).
type Meta struct {
	// Role is RoleManager or RoleWorker.
	Role string
	// APIAddr is the host:port of the node's dispatcher/API endpoint, or
	// empty if it serves none (plain workers).
	APIAddr string
	// Keys are the fingerprints (KeyFingerprint) of the node's gossip
	// keyring, primary first. Membership fills them in; what a caller sets
	// is ignored.
	Keys []string
}

// wireMeta is the encoding of Meta: small JSON with short keys and a
// version, so fields can be added without breaking older readers (unknown
// keys are ignored by encoding/json).
type wireMeta struct {
	V       int      `json:"v"`
	Role    string   `json:"r,omitempty"`
	APIAddr string   `json:"a,omitempty"`
	Keys    []string `json:"k,omitempty"`
}

const metaVersion = 1

func (m Meta) validate() error {
	switch m.Role {
	case RoleManager, RoleWorker:
	default:
		return fmt.Errorf("%w: meta role %q, want %q or %q", ErrInvalidConfig, m.Role, RoleManager, RoleWorker)
	}
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: encoded meta is %d bytes, limit is %d", ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return nil
}

func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(wireMeta{V: metaVersion, Role: m.Role, APIAddr: m.APIAddr, Keys: m.Keys})
	if err != nil {
		return nil, fmt.Errorf("membership: encode meta: %w", err)
	}
	return b, nil
}

// decodeMeta parses a peer's meta. An empty buffer decodes to the zero Meta.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, nil
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	return Meta{Role: w.Role, APIAddr: w.APIAddr, Keys: w.Keys}, nil
}
