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
	"google.golang.org/grpc/credentials/insecure"

	minkepb "github.com/minke-io/minke/api/minkepb"
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

// Dial returns a client for the manager at host: "unix:///path" or a bare
// socket path (empty means DefaultHost), or "tcp://host:port" (plaintext
// until mTLS lands). The connection is made lazily: an unreachable manager
// shows up as an Unavailable error from the first call, not from Dial.
func Dial(ctx context.Context, host string) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ep, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(ep.target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", host, err)
	}
	return &Client{conn: conn, ctl: minkepb.NewControlClient(conn), tcpHost: ep.tcpHost}, nil
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
