package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/controlapi"
	"github.com/minke-io/minke/pkg/dispatcher"
	"github.com/minke-io/minke/pkg/raftstore"
)

// LeaderMetadataKey is the trailer in which a follower names the leader's
// API address when it refuses a worker call.
const LeaderMetadataKey = "minke-leader"

var (
	_ controlapi.Cluster    = (*Manager)(nil)
	_ controlapi.Leadership = (*Manager)(nil)
)

// startRaft brings this manager's Raft member up: a new cluster is
// bootstrapped (and restored from a backup if asked), a joining manager is
// added by the leader, and a restarted one catches up. It returns once the
// replicated cluster object is present here.
func (m *Manager) startRaft(ctx context.Context, restore *minkepb.Snapshot) error {
	if m.raft.Resumed() && !m.cfg.ForceNewCluster {
		if servers, err := m.raft.Servers(); err == nil && len(servers) > 0 {
			member := false
			for _, s := range servers {
				member = member || s.ID == m.nodeID
			}
			if !member {
				return ErrDemoted
			}
		}
	}
	switch {
	case m.cfg.JoinAddr != "" && m.raft.Resumed():
		// A restart of a manager that joined earlier (its unit still says
		// --join): resume; checkSameCluster below refuses another
		// cluster's data.
		m.log.Info("data dir already holds cluster state: resuming (--join ignored)")
	case m.cfg.JoinAddr != "":
		if err := m.joinCluster(ctx); err != nil {
			return err
		}
	case m.cfg.ResumeOnly && !m.raft.Resumed():
		return errors.New("manager: no manager state to resume in " + m.cfg.DataDir)
	case m.raft.Resumed() && !m.cfg.ForceNewCluster:
		// A restarted member waits for a quorum for as long as it takes.
		if err := m.waitQuorum(ctx); err != nil {
			return err
		}
	default:
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := m.raft.WaitLeader(wctx)
		cancel()
		if err != nil {
			return err
		}
		if m.raft.IsLeader() {
			if err := m.initCA(restore != nil); err != nil {
				return err
			}
			if restore != nil {
				if err := m.raft.Restore(ctx, restore); err != nil {
					return fmt.Errorf("manager: restoring %s: %w", m.cfg.Restore, err)
				}
				m.log.Info("restored backup", "file", m.cfg.Restore, "services", len(restore.GetServices()), "nodes", len(restore.GetNodes()))
			}
			if err := m.bootstrap(ctx); err != nil {
				return err
			}
			if restore != nil || m.cfg.ForceNewCluster {
				if err := m.forgetOldManagers(ctx, restore != nil); err != nil {
					return err
				}
			}
		}
	}
	// Wait until the replicated state has arrived here.
	resumed := m.raft.Resumed()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := false
		_ = m.raft.View(func(tx raftstore.ReadTx) error { ok = tx.Cluster() != nil && tx.Node(m.nodeID) != nil; return nil })
		if ok {
			break
		}
		if !resumed && time.Now().After(deadline) {
			return errors.New("manager: the cluster state did not reach this manager within 60s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if m.cfg.JoinAddr != "" && resumed {
		return m.checkSameCluster()
	}
	return nil
}

// waitQuorum waits until this restarted manager sees a leader, saying what
// it waits for now and then.
func (m *Manager) waitQuorum(ctx context.Context) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.raft.WaitLeader(wctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		servers, _ := m.raft.Servers()
		m.log.Warn("waiting for a quorum of managers: start the other managers, or if they are gone for good "+
			"restart this one with --force-new-cluster", "managers", len(servers))
	}
}

// forgetOldManagers drops the node records of the managers that are not in
// this (restored or forced) one-manager cluster. A restored cluster also
// gets fresh join tokens and gossip key, so that it never merges with the
// cluster the backup came from; a forced one keeps them, so its workers
// stay connected.
func (m *Manager) forgetOldManagers(ctx context.Context, newIdentity bool) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		for _, n := range tx.Nodes() {
			if n.GetRole() == minkepb.NodeRole_MANAGER && n.GetMeta().GetId() != m.nodeID {
				if err := tx.Delete(n); err != nil {
					return err
				}
			}
		}
		if !newIdentity {
			return nil
		}
		c := proto.Clone(tx.Cluster()).(*minkepb.Cluster)
		// A new identity drops the old cluster's keyring and any rotation
		// it was running: nothing may accept the old key.
		c.GossipKey, c.GossipKeys, c.GossipKeyRotation = key, nil, nil
		if m.newRoot != nil {
			// The restored cluster trusts only the CA this manager made.
			c.RootCa, c.PreviousCaCerts, c.Revoked = ca.StoredRoot(m.newRoot), nil, nil
			c.JoinTokens = newTokens(m.newRoot)
			if n := tx.Node(m.nodeID); n != nil {
				n = proto.Clone(n).(*minkepb.Node)
				n.Certificate = m.selfCert
				if err := tx.Update(n); err != nil {
					return err
				}
			}
		}
		return tx.Update(c)
	})
}

// checkSameCluster refuses a data dir that belongs to another cluster than
// the one --token names.
func (m *Manager) checkSameCluster() error {
	var tok string
	_ = m.raft.View(func(tx raftstore.ReadTx) error { tok = tx.Cluster().GetJoinTokens().GetManager(); return nil })
	if tok != m.cfg.Token {
		return fmt.Errorf("manager: %w: %s belongs to another cluster (or its manager token was rotated); "+
			"to join the cluster that --token names, start with an empty --data-dir", raftstore.ErrHasState, m.cfg.DataDir)
	}
	return nil
}

// joinCluster asks the cluster (following redirects to the leader) to add
// this manager as a Raft voter. The connection is TLS, checked against the
// CA the token pins before the token is sent; the answer carries this
// manager's certificate, for the key made here.
func (m *Manager) joinCluster(ctx context.Context) error {
	if m.cfg.Token == "" {
		return errors.New("manager: --join needs --token with the manager token ('swarmctl cluster join-token manager')")
	}
	tok, err := ca.ParseToken(m.cfg.Token)
	if err != nil {
		return fmt.Errorf("manager: --token: %s", strings.TrimPrefix(err.Error(), "ca: "))
	}
	key, csr, err := ca.NewKeyAndCSR(m.nodeID)
	if err != nil {
		return err
	}
	host, _, _ := splitHostPort(m.cfg.ListenAddr)
	req := &minkepb.JoinRequest{
		NodeId: m.nodeID, NodeSecret: m.secret, Addr: host, Description: Describe(m.cfg.Hostname),
		Manager: m.managerStatus(), Csr: csr,
	}
	creds := credentials.NewTLS(ca.PinnedTLS(tok.CAHash))
	addr := m.cfg.JoinAddr
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return fmt.Errorf("manager: --join %q: %w", addr, err)
		}
		var (
			trailer metadata.MD
			resp    *minkepb.JoinResponse
		)
		cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, dispatcher.TokenMetadataKey, m.cfg.Token), 30*time.Second)
		resp, err = minkepb.NewDispatcherClient(conn).Join(cctx, req, grpc.Trailer(&trailer))
		cancel()
		conn.Close()
		if err == nil {
			if len(resp.GetCertificate()) == 0 {
				return fmt.Errorf("manager: the manager at %s answered without a certificate (an older version?)", addr)
			}
			if err := m.id.Set(key, resp.GetCertificate(), resp.GetCaCerts()); err != nil {
				return err
			}
			m.log.Info("joined the cluster as a manager", "via", addr, "serial", m.id.Peer().Serial)
			return nil
		}
		msg := status.Convert(err).Message()
		if strings.Contains(msg, ca.ErrPinMismatch.Error()) {
			return fmt.Errorf("manager: refusing to join through %s: %s", addr, msg[strings.Index(msg, ca.ErrPinMismatch.Error()):])
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return fmt.Errorf("manager: joining through %s: %s", addr, msg)
		}
		if l := trailer.Get(LeaderMetadataKey); len(l) > 0 && l[0] != "" {
			addr = l[0]
		} else {
			addr = m.cfg.JoinAddr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
		}
	}
}

func (m *Manager) managerStatus() *minkepb.ManagerStatus {
	return &minkepb.ManagerStatus{RaftAddr: m.cfg.RaftAddr, ApiAddr: m.DispatcherAddr(),
		RegistryAddr: m.regLis.Addr().String(), GossipAddr: m.cfg.GossipAddr}
}

// recordSelf keeps this manager's addresses in its node record current
// (they may change across restarts). Followers leave it to the leader.
func (m *Manager) recordSelf(ctx context.Context) error {
	if !m.raft.IsLeader() {
		return nil
	}
	ms := m.managerStatus()
	return m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		n := tx.Node(m.nodeID)
		if n == nil || proto.Equal(n.GetManagerStatus(), ms) {
			return nil
		}
		n = proto.Clone(n).(*minkepb.Node)
		n.ManagerStatus = ms
		return tx.Update(n)
	})
}

// gossipPeers are the other managers' memberlist addresses, and this one's.
func (m *Manager) gossipPeers() []string {
	var out []string
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		for _, n := range tx.Nodes() {
			if a := n.GetManagerStatus().GetGossipAddr(); a != "" && n.GetRole() == minkepb.NodeRole_MANAGER {
				out = append(out, a)
			}
		}
		return nil
	})
	if m.members != nil {
		out = append(out, m.members.LocalAddr())
	}
	return out
}

// watchMembership closes demoted when this manager, once a Raft member,
// is no longer one, and keeps the managers together in gossip.
func (m *Manager) watchMembership(ctx context.Context, demoted chan<- struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	seen := false
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if tick%3 == 0 {
			// Reintroduce managers that gossip lost (a healed partition).
			if n, err := m.members.Rejoin(m.gossipPeers()); err == nil && n > 0 {
				m.log.Info("rejoined managers in gossip", "count", n)
			}
		}
		servers, err := m.raft.Servers()
		if err != nil {
			continue
		}
		member := false
		for _, s := range servers {
			member = member || s.ID == m.nodeID
		}
		switch {
		case member:
			seen = true
		case seen:
			m.log.Warn("this manager was removed from the cluster's managers; stopping the manager role")
			close(demoted)
			return
		}
	}
}

func readBackup(path string) (*minkepb.Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manager: --restore: %w", err)
	}
	var snap minkepb.Snapshot
	if err := proto.Unmarshal(data, &snap); err != nil || snap.GetFormatVersion() == 0 {
		return nil, fmt.Errorf("manager: --restore %s is not a minke backup (write one with 'swarmctl cluster backup FILE')", path)
	}
	return &snap, nil
}

// addManager adds a joining manager as a Raft voter, refusing when the
// leader cannot reach its Raft address (a voter nobody can reach would cost
// the cluster its quorum) or when the managers reachable now would not be a
// quorum of the bigger cluster.
func (m *Manager) checkManager(ctx context.Context, id, raftAddr string) error {
	servers, err := m.raft.Servers()
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading the managers: %v", err)
	}
	voters, reachable := 0, 0
	for _, s := range servers {
		if s.ID == id {
			return nil // a member that rejoins
		}
		if s.Voter {
			voters++
			if s.ID == m.nodeID || m.Reachable(s.ID) {
				reachable++
			}
		}
	}
	c, err := net.DialTimeout("tcp", raftAddr, 2*time.Second)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition,
			"the leader cannot reach the new manager's raft address %s (%v): check its --raft-addr and firewalls", raftAddr, err)
	}
	c.Close()
	if need := (voters+1)/2 + 1; reachable+1 < need {
		return status.Errorf(codes.FailedPrecondition,
			"adding a manager now would leave the cluster without quorum: only %d of %d managers are reachable", reachable, voters)
	}
	return nil
}

// addManager adds a checked manager as a Raft voter, in the background:
// its Raft accepts the leader only once it holds the certificate that the
// Join answer carries, and committing the new configuration may need its
// vote.
func (m *Manager) addManager(id, raftAddr string) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		actx, cancel := context.WithTimeout(m.runCtx, 60*time.Second)
		defer cancel()
		if err := m.raft.AddVoter(actx, id, raftAddr); err != nil {
			m.log.Error("adding the joining manager to raft failed", "node_id", id, "raft_addr", raftAddr, "err", err)
			return
		}
		m.log.Info("added a manager to raft", "node_id", id, "raft_addr", raftAddr)
	}()
}

// Servers implements controlapi.Cluster.
func (m *Manager) Servers() ([]raftstore.Server, error) { return m.raft.Servers() }

// RemoveServer implements controlapi.Cluster.
func (m *Manager) RemoveServer(ctx context.Context, id string) error {
	return m.raft.RemoveServer(ctx, id)
}

// LeaderID implements controlapi.Cluster.
func (m *Manager) LeaderID() (string, string) { return m.raft.LeaderID() }

// Reachable implements controlapi.Cluster: alive in gossip.
func (m *Manager) Reachable(nodeID string) bool {
	for _, mem := range m.members.Members() {
		if mem.NodeID == nodeID {
			return true
		}
	}
	return false
}

// Backup implements controlapi.Cluster.
func (m *Manager) Backup() (*minkepb.Snapshot, uint64) { return m.raft.Backup() }

// IsLeader implements controlapi.Leadership.
func (m *Manager) IsLeader() bool { return m.raft.IsLeader() }

// VerifyLeader implements controlapi.Leadership.
func (m *Manager) VerifyLeader(ctx context.Context) error { return m.raft.VerifyLeader(ctx) }

// leaderAPIAddr is the leader's --listen-addr, or an error saying why there
// is no leader to talk to.
func (m *Manager) leaderAPIAddr() (string, error) {
	id, _ := m.raft.LeaderID()
	if id == "" {
		var others []string
		_ = m.raft.View(func(tx raftstore.ReadTx) error {
			for _, a := range dispatcher.ManagerAddrs(tx) {
				if a != m.DispatcherAddr() {
					others = append(others, a)
				}
			}
			return nil
		})
		hint := ""
		if len(others) > 0 {
			hint = "; try another manager: " + strings.Join(others, ", ")
		}
		return "", status.Errorf(codes.Unavailable,
			"no leader: this manager cannot reach a quorum of managers (no quorum)%s", hint)
	}
	var addr string
	_ = m.raft.View(func(tx raftstore.ReadTx) error { addr = tx.Node(id).GetManagerStatus().GetApiAddr(); return nil })
	if addr == "" {
		return "", status.Errorf(codes.Unavailable, "the leader (%s) has not recorded its address yet; retry", id)
	}
	return addr, nil
}

// Leader implements controlapi.Leadership: a Control client for the leader,
// authenticated with the manager token, and the leader's address.
func (m *Manager) Leader(ctx context.Context) (minkepb.ControlClient, string, error) {
	addr, err := m.leaderAPIAddr()
	if err != nil {
		return nil, "", err
	}
	conn, err := m.conn(addr)
	if err != nil {
		return nil, "", status.Errorf(codes.Unavailable, "connecting to the leader at %s: %v", addr, err)
	}
	return minkepb.NewControlClient(conn), addr, nil
}

// conn returns a connection to another manager, mutual TLS with this
// manager's current certificate.
func (m *Manager) conn(addr string) (*grpc.ClientConn, error) {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if c, ok := m.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(m.id.ClientTLS(ca.RoleManager))))
	if err != nil {
		return nil, err
	}
	if m.conns == nil {
		m.conns = map[string]*grpc.ClientConn{}
	}
	m.conns[addr] = c
	return c, nil
}

// retireConns makes later calls dial afresh (with a renewed certificate);
// calls running on the old connections get a while to finish.
func (m *Manager) retireConns() {
	m.connMu.Lock()
	old := m.conns
	m.conns = nil
	m.connMu.Unlock()
	if len(old) > 0 {
		time.AfterFunc(2*controlapi.ForwardTimeout, func() {
			for _, c := range old {
				c.Close()
			}
		})
	}
}

func (m *Manager) closeConns() {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	for _, c := range m.conns {
		c.Close()
	}
	m.conns = nil
}

// guard sends worker calls to the leader: others answer Unavailable and
// name it in the returned trailer. (authorize has checked the caller.)
func (m *Manager) guard(_ context.Context, method string) (metadata.MD, error) {
	if strings.HasPrefix(method, dispatcherPrefix) && !m.raft.IsLeader() {
		addr, err := m.leaderAPIAddr()
		if err != nil {
			return nil, err
		}
		return metadata.Pairs(LeaderMetadataKey, addr), status.Errorf(codes.Unavailable, "not the leader; the leader is at %s", addr)
	}
	return nil, nil
}
