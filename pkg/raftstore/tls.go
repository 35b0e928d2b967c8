package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStreamLayer carries Raft over mutual TLS: both ends present cluster
// certificates and check the other's (see Config.TLS).
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	client    *tls.Config
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer listens on bind. Handshakes happen on first use of a
// connection, so that one slow or hostile peer never blocks Accept.
func newTLSStreamLayer(bind string, server, client *tls.Config) (*tlsStreamLayer, error) {
	adv, err := net.ResolveTCPAddr("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raftstore: raft address %q: %w", bind, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return nil, fmt.Errorf("raftstore: raft address %q: want an address other managers can reach, not a wildcard", bind)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raftstore: listen for raft on %s: %w", bind, err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && adv.Port == 0 {
		adv.Port = a.Port
	}
	return &tlsStreamLayer{ln: tls.NewListener(ln, server), advertise: adv, client: client}, nil
}

// Dial connects to another manager's Raft address and completes the
// handshake, so that a refused certificate fails here, with its reason.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), s.client)
	if err != nil {
		return nil, fmt.Errorf("raftstore: mutual TLS to %s: %w", address, err)
	}
	return c, nil
}

func (s *tlsStreamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }

func (s *tlsStreamLayer) Close() error {
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }
