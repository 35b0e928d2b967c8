package raftstore

import (
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/minke-io/minke/pkg/ca"
)

func managerIdentity(t *testing.T, root *ca.RootCA, id, role string) *ca.Identity {
	t.Helper()
	key, csr, err := ca.NewKeyAndCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	is, err := root.Sign(csr, id, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ident := ca.NewIdentity("")
	if err := ident.Set(key, is.ChainPEM, root.CertPEM); err != nil {
		t.Fatal(err)
	}
	return ident
}

// The Raft stream layer carries bytes between managers of one cluster and
// refuses a worker's certificate and another cluster's at the handshake.
func TestTLSStreamLayer(t *testing.T) {
	root, err := ca.NewRootCA("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ca.NewRootCA("c2", time.Now())
	server := managerIdentity(t, root, "m1", ca.RoleManager)
	sl, err := newTLSStreamLayer("127.0.0.1:0", server.MutualServerTLS(ca.RoleManager, nil, nil), server.ClientTLS(ca.RoleManager))
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }() // echo
		}
	}()
	addr := raft.ServerAddress(sl.Addr().String())
	cases := []struct {
		name string
		id   *ca.Identity
		ok   bool
	}{
		{"manager", managerIdentity(t, root, "m2", ca.RoleManager), true},
		{"worker", managerIdentity(t, root, "w1", ca.RoleWorker), false},
		{"other cluster", managerIdentity(t, other, "m2", ca.RoleManager), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := &tlsStreamLayer{client: c.id.ClientTLS(ca.RoleManager)}
			if c.name == "other cluster" {
				// It trusts our root, so only the server can refuse it.
				client.client = managerIdentity(t, other, "m2", ca.RoleManager).ClientTLS("")
				client.client.VerifyPeerCertificate = nil
			}
			conn, err := client.Dial(addr, 5*time.Second)
			if err == nil {
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err = conn.Write([]byte("ping")); err == nil {
					buf := make([]byte, 4)
					_, err = io.ReadFull(conn, buf)
				}
				conn.Close()
			}
			if (err == nil) != c.ok {
				t.Fatalf("round trip: %v, want ok=%v", err, c.ok)
			}
		})
	}
}
