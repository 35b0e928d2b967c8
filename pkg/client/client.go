// Package client is the Go client of the minke Control API, shared by
// swarmctl and automation. Methods return gRPC errors unwrapped, so callers
// can show status.Convert(err).Message() to a user.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// DefaultHost is the manager's control socket on the local machine.
const DefaultHost = "unix:///run/minke/manager.sock"

// maxRecvMsgSize lets list calls on large clusters exceed gRPC's 4 MiB default.
const maxRecvMsgSize = 64 << 20

// ErrInvalidHost is returned by Dial for a host it cannot parse.
var ErrInvalidHost = errors.New("client: invalid host")

// Client talks to one manager. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	ctl  minkepb.ControlClient
	// tcpHost is the host part of a tcp:// address, empty for unix sockets;
	// it stands in for a wildcard registry address (see PushImage).
	tcpHost string
	// id is the client certificate of --tls-dir (nil on the unix socket):
	// it also authenticates pushes to the cluster's registry.
	id *ca.Identity
}

// endpoint is a parsed --host value.
type endpoint struct {
	target  string // gRPC target
	tcpHost string // host of a tcp:// address
}

// parseHost accepts "unix:///path", a bare socket path, or "tcp://host:port";
// an empty host means DefaultHost.
func parseHost(host string) (endpoint, error) {
	if host == "" {
		host = DefaultHost
	}
	switch {
	case strings.HasPrefix(host, "unix://"):
		path := strings.TrimPrefix(host, "unix://")
		if path == "" {
			return endpoint{}, fmt.Errorf("%w %q: want unix:///PATH", ErrInvalidHost, host)
		}
		return endpoint{target: unixTarget(path)}, nil
	case strings.HasPrefix(host, "tcp://"):
		addr := strings.TrimPrefix(host, "tcp://")
		h, port, err := net.SplitHostPort(addr)
		if err != nil || h == "" || port == "" {
			return endpoint{}, fmt.Errorf("%w %q: want tcp://HOST:PORT", ErrInvalidHost, host)
		}
		return endpoint{target: "passthrough:///" + addr, tcpHost: h}, nil
	case strings.Contains(host, "://"):
		return endpoint{}, fmt.Errorf("%w %q: want unix:///PATH, a socket path, or tcp://HOST:PORT", ErrInvalidHost, host)
	default:
		return endpoint{target: unixTarget(host)}, nil
	}
}

func unixTarget(path string) string {
	if filepath.IsAbs(path) {
		return "unix://" + path
	}
	return "unix:" + path
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	tlsDir string
	dialer func(context.Context, string) (net.Conn, error)
}

// WithTLSDir makes a tcp:// connection mutual TLS with the client
// certificate in dir (ca.pem, cert.pem, key.pem, as 'swarmctl cluster
// client-cert --out DIR' writes them).
func WithTLSDir(dir string) Option { return func(o *dialOptions) { o.tlsDir = dir } }

// WithContextDialer dials the connection with fn (tests: network
// namespaces).
func WithContextDialer(fn func(context.Context, string) (net.Conn, error)) Option {
	return func(o *dialOptions) { o.dialer = fn }
}

// ErrNeedTLS: a tcp:// host needs a client certificate.
var ErrNeedTLS = errors.New("client: the Control API on TCP needs a client certificate")

// Dial returns a client for the manager at host: "unix:///path" or a bare
// socket path (empty means DefaultHost), or "tcp://host:port" with
// WithTLSDir (mutual TLS: the manager must present a certificate from the
// cluster CA in the directory, and this client presents its own). The
// connection is made lazily: an unreachable manager shows up as an
// Unavailable error from the first call, not from Dial.
func Dial(ctx context.Context, host string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var o dialOptions
	for _, fn := range opts {
		fn(&o)
	}
	ep, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	var id *ca.Identity
	switch {
	case ep.tcpHost != "" && o.tlsDir == "":
		return nil, fmt.Errorf("%w: %s: pass --tls-dir DIR with the files 'swarmctl cluster client-cert --out DIR' writes on a manager", ErrNeedTLS, host)
	case ep.tcpHost != "":
		id, err = ca.LoadIdentity(o.tlsDir)
		if err != nil {
			return nil, fmt.Errorf("client: --tls-dir: %w", err)
		}
		if id.Certificate() == nil || id.Roots() == nil {
			return nil, fmt.Errorf("client: --tls-dir %s holds no %s, %s and %s: write them with 'swarmctl cluster client-cert --out %s' on a manager",
				o.tlsDir, ca.CAFile, ca.CertFile, ca.KeyFile, o.tlsDir)
		}
		creds = credentials.NewTLS(id.ClientTLS(ca.RoleManager))
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize))}
	if o.dialer != nil {
		dopts = append(dopts, grpc.WithContextDialer(o.dialer))
	}
	conn, err := grpc.NewClient(ep.target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", host, err)
	}
	return &Client{conn: conn, ctl: minkepb.NewControlClient(conn), tcpHost: ep.tcpHost, id: id}, nil
}

// New wraps an existing connection, for callers that dial themselves (tests,
// or automation with its own credentials). Close closes conn.
func New(conn *grpc.ClientConn) *Client {
	return &Client{conn: conn, ctl: minkepb.NewControlClient(conn)}
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Control exposes the raw Control stub for calls this package does not wrap.
func (c *Client) Control() minkepb.ControlClient { return c.ctl }
