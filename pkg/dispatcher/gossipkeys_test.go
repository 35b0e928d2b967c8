package dispatcher

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestSessionGossipKeyring(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	tests := []struct {
		name    string
		cluster *minkepb.Cluster
		primary []byte
		keys    int
	}{
		{"no cluster", nil, nil, 0},
		{"no encryption", &minkepb.Cluster{}, nil, 0},
		{"one key", &minkepb.Cluster{GossipKey: k1}, k1, 1},
		{"installing", &minkepb.Cluster{GossipKey: k1, GossipKeys: [][]byte{k1, k2}}, k1, 2},
		{"using", &minkepb.Cluster{GossipKey: k2, GossipKeys: [][]byte{k2, k1}}, k2, 2},
		{"primary missing from keys", &minkepb.Cluster{GossipKey: k2, GossipKeys: [][]byte{k1}}, k2, 2},
	}
	seen := map[string]*minkepb.GossipKeyring{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr := gossipKeyring(tt.cluster)
			if tt.primary == nil {
				if kr != nil {
					t.Fatalf("keyring = %v, want none", kr)
				}
				return
			}
			if !bytes.Equal(kr.GetPrimary(), tt.primary) || len(kr.GetKeys()) != tt.keys || !bytes.Equal(kr.GetKeys()[0], tt.primary) {
				t.Fatalf("keyring primary %x keys %d, want %x first of %d", kr.GetPrimary(), len(kr.GetKeys()), tt.primary, tt.keys)
			}
			// Equal keyrings have equal versions; different ones differ, so
			// that a session resends exactly when its keyring changes.
			for other, okr := range seen {
				if same := proto.Equal(kr, okr); same != (keyringVersion(kr) == keyringVersion(okr)) {
					t.Errorf("keyrings of %q and %q: equal %v, but versions %q and %q", tt.name, other, same,
						keyringVersion(kr), keyringVersion(okr))
				}
			}
			seen[tt.name] = kr
		})
	}
}
