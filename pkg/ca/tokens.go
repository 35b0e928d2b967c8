// Package ca owns the cluster's trust material: the root CA kept in the
// Raft store, join tokens that pin it, node and client certificates, the
// TLS configurations every connection uses, and renewal.
//
// Certificate identity: the subject's CommonName is the node ID (or
// "client-<id>" for a client certificate) and its first
// OrganizationalUnit is the role: "manager", "worker" or "client". The
// Organization is the cluster ID. Every certificate is ECDSA P-256, valid
// for both TLS server and client authentication, and is checked against the
// cluster's roots by minke itself (no host names are involved).
package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TokenPrefix starts every join token, with its format version.
const TokenPrefix = "MKTKN-2-"

// ErrToken is the family of malformed-token errors.
var ErrToken = errors.New("ca: invalid join token")

// Token is a parsed join token: MKTKN-2-<role>-<ca sha256 hex>-<secret hex>.
type Token struct {
	Role string
	// CAHash is the SHA-256 of the root CA certificate (DER) the joining
	// node must find the managers' certificates chained to.
	CAHash []byte
	Secret string
}

// NewJoinToken makes a join token for role ("worker" or "manager") that
// pins the root certificate caCertDER, with 128 random bits.
func NewJoinToken(role string, caCertDER []byte) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("ca: no randomness: " + err.Error())
	}
	return RepinToken(role, caCertDER, hex.EncodeToString(b))
}

// RepinToken makes the token with the given secret that pins caCertDER.
func RepinToken(role string, caCertDER []byte, secret string) string {
	h := sha256.Sum256(caCertDER)
	return TokenPrefix + role + "-" + hex.EncodeToString(h[:]) + "-" + secret
}

// ParseToken checks a token's form. Tokens of format 1 (from before the
// cluster had a CA) are refused with a message that says what to do.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "MKTKN-1-") {
		return Token{}, fmt.Errorf("%w: %q is a format-1 token, which does not pin the cluster CA; "+
			"get a current token with 'swarmctl cluster join-token worker|manager' on a manager", ErrToken, redact(s))
	}
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: %q does not start with %s", ErrToken, redact(s), TokenPrefix)
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: want %s<role>-<ca hash>-<secret>", ErrToken, TokenPrefix)
	}
	role, hash, secret := parts[0], parts[1], parts[2]
	if role != RoleWorker && role != RoleManager {
		return Token{}, fmt.Errorf("%w: role %q: want worker or manager", ErrToken, role)
	}
	h, err := hex.DecodeString(hash)
	if err != nil || len(h) != sha256.Size {
		return Token{}, fmt.Errorf("%w: the CA hash must be 64 hex digits", ErrToken)
	}
	if _, err := hex.DecodeString(secret); err != nil || len(secret) < 32 {
		return Token{}, fmt.Errorf("%w: the secret must be at least 32 hex digits", ErrToken)
	}
	return Token{Role: role, CAHash: h, Secret: secret}, nil
}

// TokenRole returns the role a well-formed token names, or "".
func TokenRole(token string) string {
	t, err := ParseToken(token)
	if err != nil {
		return ""
	}
	return t.Role
}

// TokenSecret returns the secret part of a token, or "".
func TokenSecret(token string) string {
	t, err := ParseToken(token)
	if err != nil {
		return ""
	}
	return t.Secret
}

// TokensEqual compares two tokens in constant time.
func TokensEqual(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func redact(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
