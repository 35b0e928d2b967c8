package raftstore

import (
	"crypto/rand"
	"math/big"
)

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// NewID returns a random 25-character lowercase ID (about 129 bits), like
// swarm's. IDs are made by proposers, never inside Apply.
func NewID() string {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 129))
	if err != nil {
		panic("raftstore: no randomness: " + err.Error())
	}
	s := n.Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s[len(s)-25:]
}
