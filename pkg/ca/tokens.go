// Package ca owns the cluster's trust material. Today that is the join
// tokens; the root CA and node certificates come with mTLS.
package ca

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// TokenPrefix starts every join token, with its format version.
const TokenPrefix = "MKTKN-1-"

// NewJoinToken makes a join token for role ("worker" or "manager"): the
// prefix, the role it grants, and 128 random bits.
func NewJoinToken(role string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("ca: no randomness: " + err.Error())
	}
	return TokenPrefix + role + "-" + hex.EncodeToString(b)
}

// TokenRole returns the role a well-formed token names, or "".
func TokenRole(token string) string {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return ""
	}
	role, _, ok := strings.Cut(rest, "-")
	if !ok || (role != "worker" && role != "manager") {
		return ""
	}
	return role
}
