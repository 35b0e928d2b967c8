package agent

import (
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// leaderMetadataKey is the trailer in which a manager that is not the
// leader names the leader (see pkg/manager).
const leaderMetadataKey = "minke-leader"

// dispatcher returns a client for the manager the agent talks to now.
func (a *Agent) dispatcher() minkepb.DispatcherClient {
	c, _ := a.dispatcherAt()
	return c
}

// dispatcherAt is dispatcher with the manager's address, which a caller
// whose call fails hands to failover.
func (a *Agent) dispatcherAt() (minkepb.DispatcherClient, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.client, a.addr
}

// dial connects to a manager: mutual TLS with the node's certificate, or,
// before the node has one, TLS checked against the CA the join token pins.
func (a *Agent) dial(addr string) (*grpc.ClientConn, error) {
	cfg := ca.PinnedTLS(a.pin)
	if a.id.Certificate() != nil {
		cfg = a.id.ClientTLS(ca.RoleManager)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithPerRPCCredentials(creds{a}),
		// A manager that vanished without closing the connection is noticed
		// in about 15s, and the agent fails over.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(sessionWindow), grpc.WithInitialConnWindowSize(sessionWindow))
}

// sessionWindow is the connection's fixed HTTP/2 flow-control window. A
// fixed window turns off gRPC's bandwidth probing, which answers nearly
// every burst of data the manager sends with a PING (and the manager with
// a PING ack): a session's messages are small and spread out, so that was
// an extra frame, and write, each way per message, with thousands of
// sessions on one manager. 4 MiB in flight is far more than a session
// message needs.
const sessionWindow = 4 << 20

// learnManagers remembers the managers' addresses for failover.
func (a *Agent) learnManagers(addrs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range addrs {
		if !slices.Contains(a.managers, m) {
			a.managers = append(a.managers, m)
		}
	}
}

// failover picks the next manager after a call to the manager at from
// failed: the leader if the answer named one, else the next known manager.
//
// It does nothing when the agent has already moved away from from: the
// session, the status reporter and the other callers share one connection,
// and one failover closes the calls of the others with "the client
// connection is closing", which names no leader. Rotating again for each of
// them moved the agent off the leader the first one had found, and at
// thousands of nodes after a leader change the agents kept each other
// moving between managers (and TLS handshakes) for minutes.
func (a *Agent) failover(from string, trailer metadata.MD) {
	a.mu.Lock()
	if from != a.addr {
		a.mu.Unlock()
		return
	}
	next := ""
	if v := trailer.Get(leaderMetadataKey); len(v) > 0 && v[0] != "" {
		next = v[0]
		// Remember it: if the leader dies, the rotation below must still
		// include every manager this agent has talked to.
		if !slices.Contains(a.managers, next) {
			a.managers = append(a.managers, next)
		}
	} else if len(a.managers) > 1 {
		i := slices.Index(a.managers, a.addr)
		next = a.managers[(i+1)%len(a.managers)]
	}
	if next == "" || next == a.addr {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	conn, err := a.dial(next)
	if err != nil {
		a.log.Warn("cannot dial manager", "addr", next, "err", err)
		return
	}
	a.mu.Lock()
	old := a.conn
	a.conn, a.client, a.addr = conn, minkepb.NewDispatcherClient(conn), next
	a.mu.Unlock()
	a.log.Info("switched manager", "addr", next)
	// Calls still running on the old connection fail and are retried.
	_ = old.Close()
}
