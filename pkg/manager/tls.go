package manager

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Every TCP connection of a manager is TLS with cluster certificates: the
// worker API (--listen-addr) accepts a connection without a client
// certificate only for Join (the joiner pinned our CA through its token);
// every other call, and all of Raft and the Control API on --control-addr,
// need a certificate issued by the cluster's CA, of a node that is still in
// the store and not revoked. The unix control socket (root-only) is the
// only plaintext way in.

// initCA makes this manager's first certificate where no CA exists yet:
// a new cluster, or one restored from a backup (which must not trust the
// old cluster's CA). It runs on the only manager of a fresh Raft
// configuration, before bootstrap stores the root.
func (m *Manager) initCA(restoring bool) error {
	var c *minkepb.Cluster
	_ = m.raft.View(func(tx raftstore.ReadTx) error { c = tx.Cluster(); return nil })
	if c.GetRootCa() != nil && !restoring {
		return nil
	}
	m.clusterID = c.GetMeta().GetId()
	if m.clusterID == "" {
		m.clusterID = raftstore.NewID()
	}
	root, err := ca.NewRootCA(m.clusterID, time.Now())
	if err != nil {
		return err
	}
	key, csr, err := ca.NewKeyAndCSR(m.nodeID)
	if err != nil {
		return err
	}
	lifetime := m.cfg.CertLifetime
	if lifetime == 0 {
		lifetime = ca.Lifetime(c)
	}
	is, err := root.Sign(csr, m.nodeID, ca.RoleManager, lifetime, time.Now())
	if err != nil {
		return err
	}
	if err := m.id.Set(key, is.ChainPEM, root.CertPEM); err != nil {
		return err
	}
	m.newRoot, m.selfCert = root, &minkepb.NodeCertificate{Serial: is.Serial, CaFingerprint: ca.Fingerprint(root.Cert)}
	m.log.Info("created the cluster root CA", "fingerprint", ca.Fingerprint(root.Cert))
	return nil
}

// newTokens are join tokens pinned to root.
func newTokens(root *ca.RootCA) *minkepb.JoinTokens {
	return &minkepb.JoinTokens{Worker: ca.NewJoinToken(ca.RoleWorker, root.Cert.Raw), Manager: ca.NewJoinToken(ca.RoleManager, root.Cert.Raw)}
}

// ensureCert gives a manager that has cluster state but no certificate
// (its certs directory was lost) a new one, if it leads.
func (m *Manager) ensureCert(ctx context.Context) error {
	if m.id.Certificate() != nil {
		return nil
	}
	if !m.raft.IsLeader() {
		return fmt.Errorf("manager: no node certificate in %s: restore it, or join this manager again with an empty --data-dir", m.id.Dir())
	}
	return m.renewSelf(ctx)
}

// renewSelf renews this manager's certificate once.
func (m *Manager) renewSelf(ctx context.Context) error {
	return ca.NewRenewer(m.id, m.renewCert, m.cfg.Logger).RenewNow(ctx)
}

// renewCert is the renewer's RenewFunc: the leader signs for itself, other
// managers ask the leader, authenticated by their current certificate.
func (m *Manager) renewCert(ctx context.Context, csr []byte) ([]byte, []byte, error) {
	if m.raft.IsLeader() {
		if m.disp == nil {
			return m.signSelf(ctx, csr)
		}
		resp, err := m.disp.IssueCertificate(ctx, m.nodeID, csr)
		if err != nil {
			return nil, nil, err
		}
		return resp.GetCertificate(), resp.GetCaCerts(), nil
	}
	addr, err := m.leaderAPIAddr()
	if err != nil {
		return nil, nil, err
	}
	conn, err := m.conn(addr)
	if err != nil {
		return nil, nil, err
	}
	resp, err := minkepb.NewDispatcherClient(conn).RenewCertificate(ctx, &minkepb.RenewCertificateRequest{Csr: csr})
	if err != nil {
		return nil, nil, fmt.Errorf("renewing through the leader at %s: %s", addr, status.Convert(err).Message())
	}
	return resp.GetCertificate(), resp.GetCaCerts(), nil
}

// signSelf signs csr for this manager before the dispatcher runs.
func (m *Manager) signSelf(ctx context.Context, csr []byte) (chain, roots []byte, err error) {
	err = m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		c, n := tx.Cluster(), tx.Node(m.nodeID)
		if n == nil {
			return fmt.Errorf("manager: this manager (%s) is not in the store", m.nodeID)
		}
		root, err := ca.ClusterRoot(c)
		if err != nil {
			return err
		}
		is, err := root.Sign(csr, m.nodeID, ca.RoleManager, ca.Lifetime(c), time.Now())
		if err != nil {
			return err
		}
		n = proto.Clone(n).(*minkepb.Node)
		n.Certificate = ca.RecordIssued(c, is)
		chain, roots = is.ChainPEM, ca.TrustBundle(c)
		return tx.Update(n)
	})
	return chain, roots, err
}

// runTLS keeps this manager's trust in step with the store: the trusted
// roots follow the cluster's, a root this manager's certificate is not from
// triggers a renewal, and the leader ends a CA rotation once every node
// holds a certificate from the new root. It also runs the renewer.
func (m *Manager) runTLS(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); m.renewer.Run(ctx) }()
	defer func() { <-done }()
	for {
		var (
			c     *minkepb.Cluster
			nodes []*minkepb.Node
		)
		sub, err := m.raft.ViewAndWatch(func(tx raftstore.ReadTx) error {
			c = tx.Cluster()
			if len(c.GetPreviousCaCerts()) > 0 { // only a rotation in progress needs the nodes
				nodes = tx.Nodes()
			}
			return nil
		})
		if err != nil {
			return
		}
		if len(c.GetRootCa().GetCert()) > 0 {
			if err := m.id.SetRoots(ca.TrustBundle(c)); err != nil {
				m.log.Warn("updating the trusted roots", "err", err)
			}
			if !ca.SignedBy(m.id.Leaf(), c.GetRootCa().GetCert()) {
				m.renewer.Kick()
			}
			if m.raft.IsLeader() {
				m.finishRotation(ctx, c, nodes)
			}
		}
		waitTrustChange(ctx, sub)
		sub.Cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// waitTrustChange returns once a committed change may concern trust (the
// cluster, a node, or a reset), the subscription ends, ctx ends, or 5s
// have passed (leadership changes are no store events). Other changes,
// tasks' above all, are drained and passed over: re-reading every node for
// each of them held up commits at thousands of nodes.
func waitTrustChange(ctx context.Context, sub *raftstore.Subscription) {
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Done():
			return
		case <-timeout.C:
			return
		case <-sub.Ready():
			for _, ev := range sub.Drain() {
				switch ev.Object.(type) {
				case *minkepb.Cluster, *minkepb.Node, nil:
					return
				}
			}
		}
	}
}

func (m *Manager) finishRotation(ctx context.Context, c *minkepb.Cluster, nodes []*minkepb.Node) {
	if ca.FinishRotation(c, nodes) == nil {
		return
	}
	err := m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		done := ca.FinishRotation(tx.Cluster(), tx.Nodes())
		if done == nil {
			return nil
		}
		return tx.Update(done)
	})
	if err != nil {
		m.log.Warn("finishing the CA rotation", "err", err)
		return
	}
	m.log.Info("CA rotation finished: every node holds a certificate from the new root; the old root is no longer trusted",
		"fingerprint", ca.PEMFingerprint(c.GetRootCa().GetCert()))
}

// authorizeRaftPeer refuses Raft connections from revoked certificates.
// Node records are not consulted: a joining manager's store is empty until
// Raft fills it.
func (m *Manager) authorizeRaftPeer(p ca.Peer) error {
	select {
	case <-m.raftOpened:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("this manager's store is not open yet: retry")
	}
	var revoked bool
	_ = m.raft.View(func(tx raftstore.ReadTx) error { revoked = ca.Revoked(tx.Cluster(), p.Serial); return nil })
	if revoked {
		return fmt.Errorf("the certificate of %s (serial %s) was revoked: the node was removed", p.ID, p.Serial)
	}
	return nil
}

// Methods that need no certificate, and methods only the unix socket serves.
const (
	methodJoin        = "/minke.v1.Dispatcher/Join"
	methodClientCert  = "/minke.v1.Control/IssueClientCertificate"
	controlPrefix     = "/minke.v1.Control/"
	dispatcherPrefix  = "/minke.v1.Dispatcher/"
	listenerWorkerAPI = "worker API"
	listenerControl   = "control API"
)

// authorize checks the caller's certificate for method on the given
// listener and records the caller in the returned context.
func (m *Manager) authorize(ctx context.Context, method, listener string) (context.Context, error) {
	var certs []*x509.Certificate
	remote := ""
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			certs = ti.State.PeerCertificates
		}
	}
	refuse := func(code codes.Code, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		m.log.Warn("refused call", "method", method, "listener", listener, "remote", remote, "reason", msg)
		return status.Error(code, msg)
	}
	if len(certs) == 0 {
		if method == methodJoin && listener == listenerWorkerAPI {
			return ctx, nil // the join token authenticates
		}
		return nil, refuse(codes.Unauthenticated, "%s needs a certificate issued by this cluster (nodes get one when they join; "+
			"'swarmctl cluster client-cert' on a manager makes one for clients)", method)
	}
	p, err := m.verified.Verify(certs, m.id.Roots(), time.Now())
	if err != nil {
		return nil, refuse(codes.Unauthenticated, "%s", strings.TrimPrefix(err.Error(), "ca: "))
	}
	var (
		revoked bool
		node    *minkepb.Node
	)
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		revoked, node = ca.Revoked(tx.Cluster(), p.Serial), tx.Node(p.ID)
		return nil
	})
	if revoked && p.Role == ca.RoleClient {
		return nil, refuse(codes.PermissionDenied, "%s", revokedReason(p))
	}
	if revoked {
		return nil, refuse(codes.PermissionDenied, "the certificate of %s (serial %s) was revoked: the node was removed from the cluster; "+
			"to bring the machine back, join it again with an empty --data-dir and a join token", p.ID, p.Serial)
	}
	switch p.Role {
	case ca.RoleClient:
		if listener != listenerControl || !strings.HasPrefix(method, controlPrefix) || method == methodClientCert {
			return nil, refuse(codes.PermissionDenied, "a client certificate (%s) may call only the Control API on --control-addr "+
				"(and not make client certificates: that takes the manager's unix socket)", p.ID)
		}
	case ca.RoleManager, ca.RoleWorker:
		if node == nil {
			return nil, refuse(codes.PermissionDenied, "node %s was removed from the cluster: its certificate is no longer accepted; "+
				"to bring the machine back, join it again with an empty --data-dir and a join token", p.ID)
		}
		if strings.HasPrefix(method, controlPrefix) && (p.Role != ca.RoleManager || node.GetRole() != minkepb.NodeRole_MANAGER) {
			return nil, refuse(codes.PermissionDenied, "node %s holds a %s certificate: it may call only the worker API (Dispatcher), "+
				"not the Control API", p.ID, p.Role)
		}
		if method == methodClientCert {
			return nil, refuse(codes.PermissionDenied, "client certificates are made only on a manager's unix socket")
		}
	default:
		return nil, refuse(codes.PermissionDenied, "certificate of %s has unknown role %q", p.ID, p.Role)
	}
	return ca.WithPeer(ctx, p), nil
}

// authUnary and authStream apply authorize, then the leader redirect of
// worker calls.
func (m *Manager) authUnary(listener string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := m.authorize(ctx, info.FullMethod, listener)
		if err != nil {
			return nil, err
		}
		if md, err := m.guard(ctx, info.FullMethod); err != nil {
			if md != nil {
				_ = grpc.SetTrailer(ctx, md)
			}
			return nil, err
		}
		return h(ctx, req)
	}
}

func (m *Manager) authStream(listener string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := m.authorize(ss.Context(), info.FullMethod, listener)
		if err != nil {
			return err
		}
		if md, err := m.guard(ctx, info.FullMethod); err != nil {
			if md != nil {
				ss.SetTrailer(md)
			}
			return err
		}
		return h(srv, &peerStream{ServerStream: ss, ctx: ctx})
	}
}

type peerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *peerStream) Context() context.Context { return s.ctx }
