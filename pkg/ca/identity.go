package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Files of an identity directory (a node's DATA/certs, or the directory
// 'swarmctl cluster client-cert' writes). All are mode 0600.
const (
	CAFile   = "ca.pem"
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Identity is a node's (or client's) key, certificate chain and trusted
// roots. It is safe for concurrent use; TLS configurations made from it
// always use the current certificate and roots, so renewal needs no
// restart.
type Identity struct {
	dir string

	mu       sync.RWMutex
	cert     *tls.Certificate // nil until joined
	rootsPEM []byte
	roots    *x509.CertPool
	changed  []func()
}

// NewIdentity is an empty identity persisted in dir ("" keeps it in memory).
func NewIdentity(dir string) *Identity { return &Identity{dir: dir} }

// LoadIdentity reads dir; missing files give an identity without a
// certificate (a node that has not joined yet).
func LoadIdentity(dir string) (*Identity, error) {
	id := NewIdentity(dir)
	rootsPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if err := id.setRoots(rootsPEM); err != nil {
		return nil, fmt.Errorf("ca: %s: %w", filepath.Join(dir, CAFile), err)
	}
	chain, err1 := os.ReadFile(filepath.Join(dir, CertFile))
	key, err2 := os.ReadFile(filepath.Join(dir, KeyFile))
	if errors.Is(err1, os.ErrNotExist) || errors.Is(err2, os.ErrNotExist) {
		return id, nil
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", dir, err)
	}
	id.cert = &c
	return id, nil
}

// Dir is where the identity is kept.
func (id *Identity) Dir() string { return id.dir }

// Certificate is the current certificate (nil before joining).
func (id *Identity) Certificate() *tls.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cert
}

// Leaf is the current leaf certificate (nil before joining).
func (id *Identity) Leaf() *x509.Certificate {
	if c := id.Certificate(); c != nil {
		return c.Leaf
	}
	return nil
}

// Peer is whom the current certificate names.
func (id *Identity) Peer() Peer {
	if l := id.Leaf(); l != nil {
		return PeerOf(l)
	}
	return Peer{}
}

// Roots are the trusted roots (nil before joining).
func (id *Identity) Roots() *x509.CertPool {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.roots
}

// RootsPEM are the trusted roots as PEM.
func (id *Identity) RootsPEM() []byte {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.rootsPEM
}

// OnChange registers fn to run after every new certificate (not after
// root-only changes).
func (id *Identity) OnChange(fn func()) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.changed = append(id.changed, fn)
}

// Set installs a new key and chain (and roots, if given), persisting them
// before they are used.
func (id *Identity) Set(key crypto.Signer, chainPEM, rootsPEM []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	c, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("ca: the issued certificate does not match the key: %w", err)
	}
	if err := id.write(KeyFile+".new", keyPEM); err != nil {
		return err
	}
	if err := id.write(CertFile+".new", chainPEM); err != nil {
		return err
	}
	if len(rootsPEM) > 0 {
		if err := id.SetRoots(rootsPEM); err != nil {
			return err
		}
	}
	if id.dir != "" {
		// The key first: a crash in between leaves a new key with an old
		// certificate, which LoadIdentity refuses loudly, instead of a
		// certificate nobody can use silently.
		for _, f := range []string{KeyFile, CertFile} {
			if err := os.Rename(filepath.Join(id.dir, f+".new"), filepath.Join(id.dir, f)); err != nil {
				return fmt.Errorf("ca: %w", err)
			}
		}
	}
	id.mu.Lock()
	id.cert = &c
	fns := append([]func(){}, id.changed...)
	id.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	return nil
}

// SetRoots replaces the trusted roots and persists them.
func (id *Identity) SetRoots(rootsPEM []byte) error {
	if string(rootsPEM) == string(id.RootsPEM()) {
		return nil
	}
	if err := id.write(CAFile, rootsPEM); err != nil {
		return err
	}
	return id.setRoots(rootsPEM)
}

func (id *Identity) setRoots(rootsPEM []byte) error {
	certs, err := ParseCertsPEM(rootsPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	id.mu.Lock()
	id.roots, id.rootsPEM = pool, append([]byte(nil), rootsPEM...)
	id.mu.Unlock()
	return nil
}

func (id *Identity) write(name string, data []byte) error {
	if id.dir == "" {
		return nil
	}
	if err := os.MkdirAll(id.dir, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	p := filepath.Join(id.dir, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// NewKeyAndCSR makes a P-256 key and a CSR for it. The CA decides what the
// certificate names, so the CSR's subject is informational.
func NewKeyAndCSR(subject string) (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: subject}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: csr: %w", err)
	}
	return key, csr, nil
}
