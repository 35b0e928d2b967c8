package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrNoEncryption: the keyring cannot change because this member was
// started without a key (encryption cannot be switched on without a
// partition).
var ErrNoEncryption = errors.New("membership: gossip encryption is off (started without a key)")

// KeyFingerprint names a gossip key without revealing it: the first 8
// bytes of its SHA-256, in hex. Members advertise their keyring this way.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// SetKeys makes this member's keyring hold exactly keys (primary is added
// if missing), with primary the key it encrypts with, and then broadcasts
// the keyring's fingerprints in its meta (waiting up to timeout), so that
// whoever drives a rotation can see every member's progress.
//
// The steps run in the order that never drops a packet from a member one
// phase ahead or behind: install new keys, switch the primary, remove old
// keys. Each key must be 16, 24 or 32 bytes.
func (m *Membership) SetKeys(primary []byte, keys [][]byte, timeout time.Duration) error {
	want := [][]byte{primary}
	for _, k := range keys {
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, k) }) {
			want = append(want, k)
		}
	}
	for _, k := range want {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("%w: gossip key %s is %d bytes, want 16, 24 or 32", ErrInvalidConfig, KeyFingerprint(k), len(k))
		}
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.shutdown {
		return ErrShutdown
	}
	kr := m.keyring
	if kr == nil {
		return ErrNoEncryption
	}
	before := fingerprints(kr.GetKeys())
	for _, k := range want {
		if err := kr.AddKey(append([]byte(nil), k...)); err != nil {
			return fmt.Errorf("membership: install gossip key %s: %w", KeyFingerprint(k), err)
		}
	}
	if err := kr.UseKey(primary); err != nil {
		return fmt.Errorf("membership: use gossip key %s: %w", KeyFingerprint(primary), err)
	}
	// Remove from the end: memberlist's RemoveKey shifts later keys in
	// place, under readers that hold the old slice; the last key shifts
	// nothing. A rotation only ever has two keys, so the one removed is the
	// last.
	installed := kr.GetKeys()
	for i := len(installed) - 1; i > 0; i-- {
		k := installed[i]
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, k) }) {
			if err := kr.RemoveKey(k); err != nil {
				return fmt.Errorf("membership: remove gossip key %s: %w", KeyFingerprint(k), err)
			}
		}
	}
	after := fingerprints(kr.GetKeys())
	if slices.Equal(before, after) {
		return nil
	}
	m.logger.Info("gossip keyring changed", "node_id", m.nodeID, "primary", after[0], "keys", after, "before", before)
	m.metaMu.Lock()
	m.meta = m.encodeLocked()
	m.metaMu.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: broadcast keyring change: %w", err)
	}
	return nil
}

// Keys returns the fingerprints of this member's keyring, primary first,
// or nil when encryption is off.
func (m *Membership) Keys() []string {
	if m.keyring == nil {
		return nil
	}
	return fingerprints(m.keyring.GetKeys())
}

func fingerprints(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = KeyFingerprint(k)
	}
	return out
}
