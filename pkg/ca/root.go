package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Roles named in certificates.
const (
	RoleManager = "manager"
	RoleWorker  = "worker"
	RoleClient  = "client"
)

// DefaultCertLifetime is how long certificates are valid unless the
// cluster says otherwise.
const DefaultCertLifetime = 90 * 24 * time.Hour

// MinCertLifetime is the shortest lifetime accepted (short ones are for
// tests).
const MinCertLifetime = 3 * time.Second

// rootLifetime is the root CA's validity.
const rootLifetime = 20 * 365 * 24 * time.Hour

// skew backdates certificates a little against clocks that disagree.
const skew = time.Minute

// ErrCSR is returned for a certificate request that cannot be signed.
var ErrCSR = errors.New("ca: invalid certificate request")

// RootCA signs certificates.
type RootCA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
	KeyPEM  []byte
	// CrossSigned, during a rotation, is Cert signed by the previous root
	// (PEM), appended to the chains this root issues.
	CrossSigned []byte
}

// NewRootCA creates a root CA for the cluster clusterID.
func NewRootCA(clusterID string, now time.Time) (*RootCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: root key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "minke root CA " + now.UTC().Format("2006-01-02T15:04:05Z"), Organization: []string{clusterID}},
		NotBefore:             now.Add(-skew),
		NotAfter:              now.Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: root certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &RootCA{Cert: cert, CertPEM: encodePEM("CERTIFICATE", der), Key: key, KeyPEM: encodePEM("EC PRIVATE KEY", keyDER)}, nil
}

// ParseRootCA reads a root from PEM (as kept in the Cluster object).
func ParseRootCA(certPEM, keyPEM, crossSigned []byte) (*RootCA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: root certificate: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: root key: %w", err)
	}
	return &RootCA{Cert: cert, CertPEM: certPEM, Key: key, KeyPEM: keyPEM, CrossSigned: crossSigned}, nil
}

// Fingerprint is the hex SHA-256 of a certificate's DER, as tokens pin it.
func Fingerprint(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(h[:])
}

// PEMFingerprint is Fingerprint of the first certificate in a PEM block, or
// "".
func PEMFingerprint(certPEM []byte) string {
	c, err := ParseCertPEM(certPEM)
	if err != nil {
		return ""
	}
	return Fingerprint(c)
}

// Issued is a signed certificate.
type Issued struct {
	// ChainPEM is the leaf, then the cross-signed root during a rotation.
	ChainPEM []byte
	Serial   string
	NotAfter time.Time
}

// Sign issues a certificate for the key in csrDER naming subject (node ID)
// and role, valid for lifetime from now. The CSR's own subject is ignored:
// the CA decides who the certificate names.
func (r *RootCA) Sign(csrDER []byte, subject, role string, lifetime time.Duration, now time.Time) (*Issued, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: bad signature: %w", ErrCSR, err)
	}
	if pk, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the key must be ECDSA P-256", ErrCSR)
	}
	if lifetime < MinCertLifetime {
		lifetime = DefaultCertLifetime
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(r.Cert.NotAfter) {
		notAfter = r.Cert.NotAfter
	}
	serial := newSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: subject, OrganizationalUnit: []string{role}, Organization: r.Cert.Subject.Organization},
		NotBefore:    now.Add(-skew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, csr.PublicKey, r.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: signing: %w", err)
	}
	chain := encodePEM("CERTIFICATE", der)
	chain = append(chain, r.CrossSigned...)
	return &Issued{ChainPEM: chain, Serial: serial.Text(16), NotAfter: notAfter}, nil
}

// CrossSign signs next's certificate with r, so that nodes trusting only r
// accept chains that end in next.
func (r *RootCA) CrossSign(next *RootCA) ([]byte, error) {
	tmpl := *next.Cert
	tmpl.SerialNumber = newSerial()
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, r.Cert, next.Cert.PublicKey, r.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: cross-signing: %w", err)
	}
	return encodePEM("CERTIFICATE", der), nil
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("ca: no randomness: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertsPEM parses every certificate in PEM data (at least one).
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM key found")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the key cannot sign")
	}
	return s, nil
}
