package membership

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Attacks on a member's gossip port: packets encrypted with another key,
// unencrypted packets, and garbage, over UDP and TCP. Each must leave the
// member list as it was and make the member log why it refused.

// memberlist's wire constants (net.go, security.go); the right-key control
// case below proves these still build a packet memberlist accepts.
const (
	wireAliveMsg    = 4
	wirePushPullMsg = 6
	wireEncryptMsg  = 10
	wireEncryptVsn  = 1
	wireNonceSize   = 12
)

// wireAlive is memberlist's alive message, field for field.
type wireAlive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

// aliveFor encodes an alive message that announces a node named name.
func aliveFor(t *testing.T, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(wireAliveMsg)
	msg := wireAlive{Incarnation: 1, Node: name, Addr: net.ParseIP("127.0.0.1").To4(), Port: 9,
		Meta: []byte(`{"v":1,"r":"worker"}`), Vsn: []uint8{1, 5, 2, 0, 0, 0}}
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(&msg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seal encrypts msg the way memberlist does (version 1: AES-GCM, the
// version byte and nonce in front, aad authenticated).
func seal(t *testing.T, key, msg, aad []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, wireNonceSize)
	_, _ = rand.Read(nonce)
	out := append([]byte{wireEncryptVsn}, nonce...)
	return gcm.Seal(out, nonce, msg, aad)
}

func garbage(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sendUDP(t *testing.T, addr string, pkt []byte) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
}

// sendTCP writes pkt on a fresh stream and reads until the member closes
// it (bounded by a deadline).
func sendTCP(t *testing.T, addr string, pkt []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	if cw, ok := c.(*net.TCPConn); ok {
		_ = cw.CloseWrite()
	}
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// tcpEncrypted frames an encrypted stream message as memberlist's
// readStream expects: type, length, then the sealed payload whose
// authenticated data is the type and length.
func tcpEncrypted(t *testing.T, key, plain []byte) []byte {
	t.Helper()
	size := 1 + wireNonceSize + len(plain) + 16
	hdr := make([]byte, 5)
	hdr[0] = wireEncryptMsg
	binary.BigEndian.PutUint32(hdr[1:], uint32(size))
	return append(hdr, seal(t, key, plain, hdr)...)
}

func memberIDs(m *Membership) []string {
	var ids []string
	for _, x := range m.Members() {
		ids = append(ids, x.NodeID)
	}
	return ids
}

func TestGossipAttacksAreRefused(t *testing.T) {
	tests := []struct {
		name   string
		tcp    bool
		packet func(t *testing.T) []byte
		// logged is what the target must log (memberlist's words).
		logged string
	}{
		{"udp alive with another key", false, func(t *testing.T) []byte { return seal(t, key2, aliveFor(t, "intruder"), nil) },
			"Decrypt packet failed: no installed keys could decrypt the message"},
		{"udp alive unencrypted", false, func(t *testing.T) []byte { return aliveFor(t, "intruder") },
			"Decrypt packet failed"},
		{"udp garbage", false, func(t *testing.T) []byte { return append([]byte{wireEncryptVsn}, garbage(300)...) },
			"Decrypt packet failed: no installed keys could decrypt the message"},
		{"udp tiny", false, func(t *testing.T) []byte { return []byte{1} },
			"Decrypt packet failed: payload is too small to decrypt"},
		{"tcp push-pull with another key", true, func(t *testing.T) []byte {
			return tcpEncrypted(t, key2, append([]byte{wirePushPullMsg}, garbage(64)...))
		}, "failed to receive: no installed keys could decrypt the message"},
		{"tcp unencrypted", true, func(t *testing.T) []byte { return append([]byte{wirePushPullMsg}, garbage(64)...) },
			"failed to receive: encryption is configured but remote state is not encrypted"},
		{"tcp garbage", true, func(t *testing.T) []byte { return append([]byte{0x77}, garbage(512)...) },
			"failed to receive: encryption is configured but remote state is not encrypted"},
		{"tcp oversized length", true, func(t *testing.T) []byte { return []byte{wireEncryptMsg, 0xff, 0xff, 0xff, 0xff} },
			"failed to receive: remote node state is larger than limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs, logger := captureLogs(t)
			target, err := New(Config{NodeID: "m1", BindAddr: "127.0.0.1", Key: key1, Meta: metaFor("m1"), Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = target.Shutdown() })
			peer := start(t, "w1", key1, metaFor("w1"))
			if _, err := peer.Join([]string{target.LocalAddr()}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, func() bool { return len(target.Members()) == 2 },
				func() string { return fmt.Sprint(memberIDs(target)) })
			before := memberIDs(target)

			if tt.tcp {
				sendTCP(t, target.LocalAddr(), tt.packet(t))
			} else {
				sendUDP(t, target.LocalAddr(), tt.packet(t))
			}
			waitFor(t, 5*time.Second, func() bool { return logs.contains(tt.logged) },
				func() string { return fmt.Sprintf("no log line %q", tt.logged) })
			if got := memberIDs(target); !slices.Equal(got, before) {
				t.Fatalf("members after the attack = %v, want %v", got, before)
			}
			// The node still gossips with its real peer.
			if err := peer.UpdateMeta(Meta{Role: RoleWorker, APIAddr: "127.0.0.1:1"}, time.Second); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, func() bool {
				mem := target.Members()
				return len(mem) == 2 && mem[indexOf(mem, "w1")].Meta.APIAddr == "127.0.0.1:1"
			}, func() string { return fmt.Sprint(target.Members()) })
		})
	}
}

// TestForgedAliveWithTheRightKeyIsAccepted is the control for the attacks
// above: the same forged packet sealed with the cluster's key does add a
// member, so the refusals come from the key, not from a malformed packet.
func TestForgedAliveWithTheRightKeyIsAccepted(t *testing.T) {
	target := start(t, "m1", key1, metaFor("m1"))
	sendUDP(t, target.LocalAddr(), seal(t, key1, aliveFor(t, "intruder"), nil))
	waitFor(t, 5*time.Second, func() bool { return slices.Contains(memberIDs(target), "intruder") },
		func() string { return fmt.Sprint(memberIDs(target)) })
}
