//go:build linux

package ha

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

const controlPort = "4246"

// TestJoinRefusals: joins with a token of the old format, a token that is
// not the cluster's, a rotated-away token, and a token whose CA hash does
// not match the manager's (a second cluster's manager in the middle) are
// refused with a clear error, and neither cluster's store changes.
func TestJoinRefusals(t *testing.T) {
	c := newCluster(t, 1, 2, options{})
	m := c.mgrs[0]
	good := c.workerToken()
	before := c.storeState(m)

	// A second cluster on host 2: its manager answers with its own CA.
	other := c.addMgr(2, "x0")
	c.start(other)
	c.waitReady(other)
	otherBefore := c.storeState(other)

	c.mustCtl(m, "cluster", "join-token", "--rotate", "worker")
	current := c.workerToken()
	before = c.storeState(m)
	cases := []struct {
		name, token, want string
		via               *mgr
	}{
		{"format-1 token", "MKTKN-1-worker-00000000000000000000000000000000", "format-1 token", m},
		{"wrong secret", ca.RepinToken(ca.RoleWorker, mustRootDER(t, c, m), strings.Repeat("ab", 16)), "invalid join token", m},
		{"rotated-away token", good, "invalid join token", m},
		// The cluster's valid token, sent to another cluster's manager (a
		// man in the middle): its CA is not the one the token pins.
		{"CA hash does not match (man in the middle)", current, "does not match the join token", other},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := c.startWorker(1, fmt.Sprintf("bad%d", i), tc.token, tc.via)
			log := waitExit(t, p, 30*time.Second)
			if !strings.Contains(log, tc.want) {
				t.Fatalf("worker log does not say %q:\n%s", tc.want, log)
			}
		})
	}
	if after := c.storeState(m); after != before {
		t.Errorf("store changed by refused joins:\nbefore %s\nafter  %s", before, after)
	}
	if after := c.storeState(other); after != otherBefore {
		t.Errorf("the other cluster's store changed:\nbefore %s\nafter  %s", otherBefore, after)
	}
	c.logHas(m, "join refused", "invalid join token")
	// The man in the middle never saw the token: the joiner hung up first.
	if strings.Contains(other.proc.Log(), "join refused") || strings.Contains(other.proc.Log(), "node joined") {
		t.Errorf("the other cluster's manager got a join request:\n%s", other.proc.Log())
	}
}

func mustRootDER(t *testing.T, c *cluster, m *mgr) []byte {
	t.Helper()
	return c.clusterCA(m).Cert.Raw
}

// TestCertificateRefusals: a forged certificate (self-signed, a real
// node's name), an expired one, a worker certificate calling the Control
// API, and calls without a certificate are refused with a clear error and
// log line; a client certificate from 'swarmctl cluster client-cert' works
// on --control-addr. The store does not change.
func TestCertificateRefusals(t *testing.T) {
	c := newCluster(t, 1, 1, options{controlPort: controlPort})
	m := c.mgrs[0]
	w := c.startWorker(1, "w1", c.workerToken(), m)
	wn := c.waitNodeReady(m, "w1")
	wid := wn.GetMeta().GetId()
	root := c.clusterCA(m)
	roots := root.CertPEM
	host := c.h.Host(1)
	ctlAddr := net.JoinHostPort(m.ip(), controlPort)
	before := c.storeState(m)

	// A forged certificate: self-signed, naming the real worker.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: wid, OrganizationalUnit: []string{ca.RoleWorker}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	forgedID := ca.NewIdentity("")
	if err := forgedID.Set(key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), roots); err != nil {
		t.Fatal(err)
	}
	expiredID := identity(t, root, wid, ca.RoleWorker, time.Now().Add(-time.Hour), 10*time.Second, roots)
	workerDir := filepath.Join(c.dir, "w1", "certs")
	workerID, err := ca.LoadIdentity(workerDir)
	if err != nil || workerID.Certificate() == nil {
		t.Fatalf("the worker's certificate: %v", err)
	}

	dispatcherCases := []struct {
		name string
		id   *ca.Identity
		code codes.Code
		want string
	}{
		{"forged certificate", forgedID, codes.Unauthenticated, "was not issued by this cluster's CA"},
		{"expired certificate", expiredID, codes.Unauthenticated, "expired at"},
		{"no certificate", ca.NewIdentity(""), codes.Unauthenticated, "needs a certificate issued by this cluster"},
	}
	for _, tc := range dispatcherCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.id.ClientTLS(ca.RoleManager)
			if tc.id.Certificate() == nil {
				cfg = workerID.ClientTLS(ca.RoleManager) // checks the manager
				cfg.GetClientCertificate = nil           // and presents nothing
			}
			conn := grpcConn(t, host, m.apiAddr(), cfg)
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			_, err := minkepb.NewDispatcherClient(conn).UpdateTaskStatus(ctx, &minkepb.UpdateTaskStatusRequest{NodeId: wid})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("UpdateTaskStatus: %v, want %v with %q", err, tc.code, tc.want)
			}
			c.logHas(m, "refused call", "UpdateTaskStatus", tc.want)
		})
	}

	t.Run("worker certificate on the Control API", func(t *testing.T) {
		for _, addr := range []string{ctlAddr, m.apiAddr()} {
			cl := tcpClient(t, host, addr, workerDir)
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err := cl.ListNodes(ctx)
			cancel()
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "may call only the worker API") {
				t.Fatalf("%s: ListNodes with a worker certificate: %v", addr, err)
			}
		}
		c.logHas(m, "refused call", "Control/ListNodes", "worker certificate")
	})

	t.Run("client certificate", func(t *testing.T) {
		dir := filepath.Join(c.dir, "client")
		out := c.mustCtl(m, "cluster", "client-cert", "--out", dir)
		if !strings.Contains(out, "client-") {
			t.Fatalf("client-cert: %s", out)
		}
		for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", f, fi, err)
			}
		}
		r := ctlAt(t, host, "", "--host", "tcp://"+ctlAddr, "--tls-dir", dir, "node", "ls")
		if r.code != 0 || !strings.Contains(r.out, "w1") {
			t.Fatalf("node ls over TCP with a client certificate: %v", r)
		}
		// A client certificate cannot mint more of them, nor call the
		// worker API.
		cl := tcpClient(t, host, ctlAddr, dir)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := cl.Control().IssueClientCertificate(ctx, &minkepb.IssueClientCertificateRequest{Csr: []byte("x")}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("IssueClientCertificate over TCP: %v", err)
		}
		r = ctlAt(t, host, "", "--host", "tcp://"+ctlAddr, "node", "ls")
		if r.code == 0 || !strings.Contains(r.out, "--tls-dir") {
			t.Fatalf("node ls over TCP without a certificate: %v", r)
		}
	})

	if after := c.storeState(m); after != before {
		t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
	}
	if !w.Running() {
		t.Fatalf("the real worker stopped:\n%s", w.Log())
	}
}

// TestRemovedNodeReconnects: 'swarmctl node rm' revokes a node; its
// worker, restarted with its certificate, is refused with a clear error,
// and the node stays removed.
func TestRemovedNodeReconnects(t *testing.T) {
	c := newCluster(t, 1, 1, options{})
	m := c.mgrs[0]
	// Stopped for good before its removal: it announces no restart, so
	// the managers do not hold it.
	w := c.startWorker(1, "w1", c.workerToken(), m, "--announce-restart=false")
	wid := c.waitNodeReady(m, "w1").GetMeta().GetId()
	w.Stop(stopTimeout)
	c.eventually(30*time.Second, "w1 DOWN", func() (bool, string) {
		n := c.nodeByName(m, "w1")
		return n.GetStatus().GetState() == minkepb.NodeStatus_DOWN, fmt.Sprintf("%v", n.GetStatus())
	})
	c.mustCtl(m, "node", "rm", wid)
	before := c.storeState(m)
	w.Restart()
	log := waitExit(t, w, 30*time.Second)
	if !strings.Contains(clusterLastRun(log), "was revoked: the node was removed from the cluster") {
		t.Fatalf("restarted removed worker:\n%s", log)
	}
	c.logHas(m, "refused call", wid, "was revoked")
	if after := c.storeState(m); after != before {
		t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestRenewalKeepsSession: with a short certificate lifetime a worker
// renews its certificate again and again, on disk and in memory, while its
// one session with the manager carries on.
func TestRenewalKeepsSession(t *testing.T) {
	// 10s: renewal comes every ~7s, which leaves a loaded machine 3s to
	// renew before the certificate in use expires.
	c := newCluster(t, 1, 1, options{extra: []string{"--cert-lifetime", "10s"}})
	m := c.mgrs[0]
	w := c.startWorker(1, "w1", c.workerToken(), m)
	wid := c.waitNodeReady(m, "w1").GetMeta().GetId()
	certFile := filepath.Join(c.dir, "w1", "certs", "cert.pem")
	serials := map[string]bool{}
	c.eventually(60*time.Second, "three renewals of w1's certificate", func() (bool, string) {
		id, err := ca.LoadIdentity(filepath.Dir(certFile))
		if err == nil && id.Certificate() != nil {
			serials[id.Peer().Serial] = true
		}
		return len(serials) >= 4, fmt.Sprintf("%d certificates seen", len(serials))
	})
	// The agent logs every session it loses; there must be none.
	if n := countLines(w.Log(), "session lost"); n != 0 {
		t.Fatalf("w1 lost its session %d times across renewals:\n%s", n, w.Log())
	}
	if n := countLines(w.Log(), "certificate renewed", wid); n < 3 {
		t.Fatalf("w1 logged %d renewals, want at least 3:\n%s", n, w.Log())
	}
	if n := c.nodeByName(m, "w1"); n.GetStatus().GetState() != minkepb.NodeStatus_READY {
		t.Fatalf("w1: %v", n.GetStatus())
	}
}

func countLines(log string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

func clusterLastRun(log string) string {
	if i := strings.LastIndex(log, "=== netharness: run "); i >= 0 {
		return log[i:]
	}
	return log
}

// TestRotateCA rotates the root of a 3-manager cluster with a worker:
// every node gets a certificate from the new root, the old root is
// dropped, join tokens pin the new root (the old ones are refused),
// certificates from the old root are refused, and the cluster keeps
// working, also across a manager restart.
func TestRotateCA(t *testing.T) {
	c := newCluster(t, 3, 2, options{})
	m := c.mgrs[0]
	oldRoot := c.clusterCA(m)
	oldToken := c.workerToken()
	c.startWorker(3, "w1", oldToken, m)
	wid := c.waitNodeReady(m, "w1").GetMeta().GetId()
	oldCert := identity(t, oldRoot, wid, ca.RoleWorker, time.Now(), time.Hour, oldRoot.CertPEM)

	out := c.mustCtl(c.follower(), "cluster", "rotate-ca")
	if !strings.Contains(out, "CA rotation started") {
		t.Fatalf("rotate-ca: %s", out)
	}
	var st *minkepb.CAStatus
	c.eventually(30*time.Second, "the CA rotation finished", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		s, err := c.client(m).CAStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		st = s
		return !s.GetRotating() && s.GetRenewed() == 4 && s.GetNodes() == 4, fmt.Sprintf("%v", s)
	})
	if st.GetFingerprint() == ca.Fingerprint(oldRoot.Cert) {
		t.Fatal("the root did not change")
	}
	newRoot := c.clusterCA(m)
	dirs := []string{filepath.Join(c.dir, "w1", "certs")}
	for _, mm := range c.mgrs[:3] {
		dirs = append(dirs, filepath.Join(mm.dataDir, "certs"))
	}
	// Every node drops the old root once it learns that the rotation ended.
	c.eventually(20*time.Second, "every node trusting only the new root, with a certificate from it", func() (bool, string) {
		for _, d := range dirs {
			id, err := ca.LoadIdentity(d)
			if err != nil || !ca.SignedBy(id.Leaf(), newRoot.CertPEM) {
				return false, fmt.Sprintf("%s: certificate not from the new root (%v)", d, err)
			}
			n := strings.Count(string(id.RootsPEM()), "BEGIN CERTIFICATE")
			if fp := ca.PEMFingerprint(id.RootsPEM()); fp != st.GetFingerprint() || n != 1 {
				return false, fmt.Sprintf("%s: trusts %s (%d roots), want only the new root", d, fp, n)
			}
		}
		return true, ""
	})
	inspect := c.mustCtl(m, "cluster", "inspect")
	if !strings.Contains(inspect, st.GetFingerprint()) || !strings.Contains(inspect, "CA rotation:      none (4 of 4") {
		t.Errorf("cluster inspect:\n%s", inspect)
	}

	// Certificates of the old root are refused now.
	conn := grpcConn(t, c.h.Host(4), m.apiAddr(), oldCert.ClientTLS(ca.RoleManager))
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	_, err := minkepb.NewDispatcherClient(conn).UpdateTaskStatus(ctx, &minkepb.UpdateTaskStatusRequest{})
	cancel()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(fmt.Sprint(err), "was not issued by this cluster's CA") {
		t.Fatalf("old-root certificate after the rotation: %v", err)
	}
	// The old token pins the old root, which no manager presents now: the
	// joiner refuses before sending it. The new token works.
	p := c.startWorker(4, "old", oldToken, m)
	if log := waitExit(t, p, 30*time.Second); !strings.Contains(log, "a CA rotated since the token was made") {
		t.Fatalf("old token after the rotation:\n%s", log)
	}
	c.startWorker(4, "w2", c.workerToken(), m)
	c.waitNodeReady(m, "w2")

	// A manager restarts on its renewed certificate.
	f := c.follower()
	f.proc.Stop(stopTimeout)
	c.restart(f)
	c.waitManagers(3)
	mustCreate(t, c, c.leader(), "after-rotation")
}
