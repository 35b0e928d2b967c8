package attack

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/minke-io/minke/internal/clustertest"
)

// sealWith encrypts payload as memberlist does (AES-GCM, version byte 1
// and a 12-byte nonce in front), under key.
func sealWith(t *testing.T, key, payload, aad []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := randomBytes(12)
	return gcm.Seal(append([]byte{1}, nonce...), nonce, payload, aad)
}

func memberIDs(tg *target) []string {
	var ids []string
	for _, m := range tg.m.GossipMembers() {
		ids = append(ids, m.NodeID)
	}
	return ids
}

// TestGossipAttacksOnAManager sends packets sealed with another key,
// unencrypted packets and garbage to a running manager's gossip port, over
// UDP and TCP: the manager logs each refusal, its member list and its store
// stay as they were, and it keeps serving. (pkg/membership's attack tests
// forge real memberlist messages and prove the same packet is accepted
// with the right key.)
func TestGossipAttacksOnAManager(t *testing.T) {
	tg := startManager(t)
	before, members := tg.state(t), memberIDs(tg)
	wrongKey := randomBytes(32)
	// pushPull (6) and alive (4) message types, followed by junk.
	pushPull := append([]byte{6}, randomBytes(64)...)
	alive := append([]byte{4}, randomBytes(64)...)
	tests := []struct {
		name    string
		network string
		packet  []byte
		logged  string
	}{
		{"udp sealed with another key", "udp", sealWith(t, wrongKey, alive, nil), "Decrypt packet failed: no installed keys could decrypt the message"},
		{"udp unencrypted", "udp", alive, "Decrypt packet failed"},
		{"udp garbage", "udp", randomBytes(700), "Decrypt packet failed"},
		{"tcp sealed with another key", "tcp", func() []byte {
			size := 1 + 12 + len(pushPull) + 16
			hdr := []byte{10, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}
			return append(hdr, sealWith(t, wrongKey, pushPull, hdr)...)
		}(), "failed to receive: no installed keys could decrypt the message"},
		{"tcp unencrypted", "tcp", pushPull, "failed to receive: encryption is configured but remote state is not encrypted"},
		{"tcp garbage", "tcp", append([]byte{0x42}, randomBytes(2048)...), "failed to receive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := strings.Count(tg.logs.String(), tt.logged)
			if tt.network == "udp" {
				c, err := net.Dial("udp", tg.gossip)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = c.Write(tt.packet)
				c.Close()
			} else {
				sendRaw(t, "tcp", tg.gossip, tt.packet)
			}
			clustertest.Eventually(t, 10*time.Second, fmt.Sprintf("the refusal logged (%q)", tt.logged), func() (bool, string) {
				return strings.Count(tg.logs.String(), tt.logged) > seen, "not logged"
			})
			if got := memberIDs(tg); !slices.Equal(got, members) {
				t.Fatalf("members after the attack = %v, want %v", got, members)
			}
			tg.stillServes(t)
		})
	}
	if after := tg.state(t); !proto.Equal(before, after) {
		t.Fatalf("the store changed:\nbefore %v\nafter  %v", before, after)
	}
}
