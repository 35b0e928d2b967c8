package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/imagetar"
	"github.com/minke-io/minke/pkg/registry"
)

// ErrNoRegistry is returned by PushImage when the manager reports no
// built-in registry address.
var ErrNoRegistry = errors.New("client: the manager reports no built-in registry")

// PushCertLifetime is the lifetime of the client certificate PushImage
// gets through the manager's unix socket for one push: its key is only in
// this process's memory, and client certificates cannot be revoked.
const PushCertLifetime = time.Hour

// PushImage pushes an image from a docker-save or OCI-layout tarball to the
// cluster's built-in registry and returns the name it was pushed as
// (canonical REPO:TAG, see imagetar.ParseName) and its manifest digest.
// nameTag (NAME[:TAG]) names the image; empty means the name recorded in
// the tarball. A tarball holding several images needs a nameTag equal to
// one of their recorded names.
//
// The registry needs a certificate from the cluster: a client dialled
// with WithTLSDir presents that one; on the unix socket the manager issues
// a client certificate of PushCertLifetime for a key made here, held in
// memory for this push.
func (c *Client) PushImage(ctx context.Context, file, nameTag string) (name, digest string, err error) {
	_, regAddr, err := c.GetCluster(ctx)
	if err != nil {
		return "", "", err
	}
	if regAddr == "" {
		return "", "", ErrNoRegistry
	}
	loaded, err := imagetar.Load(file)
	if err != nil {
		return "", "", err
	}
	names := make([]string, len(loaded))
	for i, l := range loaded {
		names[i] = l.Name
	}
	i, name, err := ChooseImage(file, names, nameTag)
	if err != nil {
		return "", "", err
	}
	// Report the name as the registry stores it (docker.io/library/x:1 is
	// x:1), which is the name services should use.
	repo, tag, err := imagetar.ParseName(name)
	if err != nil {
		return "", "", err
	}
	name = repo + ":" + tag
	id, err := c.registryIdentity(ctx)
	if err != nil {
		return "", "", err
	}
	// Not TransportFor: a client's certificate does not renew, and one
	// transport per push must not register with the identity.
	tr := registry.Transport(id.ClientTLS(ca.RoleManager))
	digest, err = imagetar.Push(ctx, RegistryHost(regAddr, c.tcpHost), tr, loaded[i].Image, name)
	if err != nil {
		return "", "", err
	}
	return name, digest, nil
}

// registryIdentity is the certificate this client pushes with: its
// --tls-dir one, or a short-lived one issued through the unix socket.
func (c *Client) registryIdentity(ctx context.Context) (*ca.Identity, error) {
	if c.id != nil {
		return c.id, nil
	}
	key, csr, err := ca.NewKeyAndCSR("swarmctl image push")
	if err != nil {
		return nil, err
	}
	resp, err := c.ctl.IssueClientCertificate(ctx, &minkepb.IssueClientCertificateRequest{Csr: csr, Lifetime: durationpb.New(PushCertLifetime)})
	if err != nil {
		st := status.Convert(err)
		if st.Code() == codes.PermissionDenied {
			return nil, status.Errorf(codes.PermissionDenied, "pushing to the cluster's registry needs a certificate: %s; "+
				"over TCP, pass --tls-dir with the files of 'swarmctl cluster client-cert'", st.Message())
		}
		return nil, err
	}
	id := ca.NewIdentity("") // in memory only
	if err := id.Set(key, resp.GetCertificate(), resp.GetCaCerts()); err != nil {
		return nil, err
	}
	return id, nil
}

// ChooseImage picks which of a tarball's images (their recorded names, ""
// when none) to push and under which name. file is only used in errors.
func ChooseImage(file string, names []string, nameTag string) (int, string, error) {
	switch {
	case len(names) == 0:
		return 0, "", fmt.Errorf("%s holds no image", file)
	case nameTag != "" && len(names) == 1:
		return 0, nameTag, nil
	case nameTag != "":
		for i, n := range names {
			if n == nameTag {
				return i, n, nil
			}
		}
		return 0, "", fmt.Errorf("%s holds %d images (%s) and none is named %q: name one of them", file, len(names), listNames(names), nameTag)
	case len(names) > 1:
		return 0, "", fmt.Errorf("%s holds %d images (%s): name the one to push", file, len(names), listNames(names))
	case names[0] == "":
		return 0, "", fmt.Errorf("%s records no image name: give one as NAME:TAG", file)
	default:
		return 0, names[0], nil
	}
}

func listNames(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			n = "<unnamed>"
		}
		out[i] = n
	}
	return strings.Join(out, ", ")
}

// RegistryHost turns the registry address a manager reports into one this
// client can reach: a wildcard or missing host (the manager listens on all
// interfaces) or a loopback one becomes the host the client dialled over
// TCP from another machine; through the local unix socket a wildcard
// becomes 127.0.0.1.
func RegistryHost(regAddr, dialHost string) string {
	host, port, err := net.SplitHostPort(regAddr)
	if err != nil {
		return regAddr
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		if dialHost == "" {
			dialHost = "127.0.0.1"
		}
		return net.JoinHostPort(dialHost, port)
	case ip != nil && ip.IsLoopback() && dialHost != "" && !isLoopbackHost(dialHost):
		// The manager's loopback is not ours when we reached it from afar.
		return net.JoinHostPort(dialHost, port)
	default:
		return regAddr
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
