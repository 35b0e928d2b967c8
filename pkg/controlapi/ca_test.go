package controlapi

import (
	"context"
	"crypto/x509"
	"encoding/pem"
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
