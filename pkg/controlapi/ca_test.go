package controlapi

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestIssueClientCertificateLifetime: a client certificate lives the
// cluster's lifetime, or the shorter one asked for (swarmctl image push
// asks for an hour); a lifetime below the minimum is refused.
func TestIssueClientCertificateLifetime(t *testing.T) {
	s, n := newServer(t)
	root, err := ca.NewRootCA("c", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clusterLifetime := 48 * time.Hour
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, RootCa: ca.StoredRoot(root),
			Spec: &minkepb.ClusterSpec{CertLifetime: durationpb.New(clusterLifetime)}})
	})
	tests := []struct {
		name     string
		lifetime *durationpb.Duration
		want     time.Duration
		code     codes.Code
	}{
		{"cluster's lifetime", nil, clusterLifetime, codes.OK},
		{"shorter", durationpb.New(time.Hour), time.Hour, codes.OK},
		{"capped", durationpb.New(1000 * time.Hour), clusterLifetime, codes.OK},
		{"too short", durationpb.New(time.Second), 0, codes.InvalidArgument},
		{"negative", durationpb.New(-time.Hour), 0, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, csr, err := ca.NewKeyAndCSR("x")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := s.IssueClientCertificate(context.Background(), &minkepb.IssueClientCertificateRequest{Csr: csr, Lifetime: tt.lifetime})
			if status.Code(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			if err != nil {
				return
			}
			b, _ := pem.Decode(resp.GetCertificate())
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if got := ca.PeerOf(cert).Role; got != ca.RoleClient {
				t.Errorf("role %q, want %q", got, ca.RoleClient)
			}
			if lo, hi := start.Add(tt.want-time.Second), time.Now().Add(tt.want+time.Second); cert.NotAfter.Before(lo) || cert.NotAfter.After(hi) {
				t.Errorf("not after %s, want %s from now", cert.NotAfter, tt.want)
			}
		})
	}
}

// TestRevokeClientCertificate: a client certificate of the cluster goes on
// the revocation list (once); a node's certificate, another cluster's and
// garbage are refused, and the list is unchanged.
func TestRevokeClientCertificate(t *testing.T) {
	s, n := newServer(t)
	root, err := ca.NewRootCA("c", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ca.NewRootCA("other", time.Now())
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, RootCa: ca.StoredRoot(root)})
	})
	issue := func(r *ca.RootCA, role string) ([]byte, string) {
		_, csr, _ := ca.NewKeyAndCSR("x")
		is, err := r.Sign(csr, "x-1", role, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return is.ChainPEM, is.Serial
	}
	revoked := func() []string {
		var out []string
		_ = n.View(func(tx raftstore.ReadTx) error {
			for _, r := range tx.Cluster().GetRevoked() {
				out = append(out, r.GetSerial())
			}
			return nil
		})
		return out
	}
	client, serial := issue(root, ca.RoleClient)
	worker, _ := issue(root, ca.RoleWorker)
	foreign, _ := issue(other, ca.RoleClient)
	refusals := []struct {
		name string
		pem  []byte
		code codes.Code
		want string
	}{
		{"garbage", []byte("not a certificate"), codes.InvalidArgument, "want the PEM client certificate"},
		{"node certificate", worker, codes.InvalidArgument, "swarmctl node rm"},
		{"another cluster's", foreign, codes.FailedPrecondition, "not issued by this cluster"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.RevokeClientCertificate(context.Background(), &minkepb.RevokeClientCertificateRequest{Certificate: tt.pem})
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %s with %q", err, tt.code, tt.want)
			}
			if r := revoked(); len(r) != 0 {
				t.Fatalf("revocation list %v after a refusal", r)
			}
		})
	}
	for range 2 {
		resp, err := s.RevokeClientCertificate(context.Background(), &minkepb.RevokeClientCertificateRequest{Certificate: client})
		if err != nil || resp.GetSerial() != serial {
			t.Fatalf("revoke = %v, %v; want serial %s", resp, err, serial)
		}
	}
	if r := revoked(); len(r) != 1 || r[0] != serial {
		t.Fatalf("revocation list %v, want [%s]", r, serial)
	}
}
