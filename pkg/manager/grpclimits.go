package manager

import (
	"google.golang.org/grpc"
)

// Limits on what a manager's gRPC servers accept from one caller. They are
// set explicitly, not left to gRPC's defaults, so that they are visible,
// tested (test/attack) and the same on every server: a bigger message is
// refused with ResourceExhausted before it is decoded, and the server goes
// on serving.
const (
	// MaxRecvMsgSize bounds one request message: half gRPC's default,
	// which is still ample. The largest legitimate requests are a service
	// spec with a long environment, a worker's batch of task statuses and
	// its log chunks (32 KiB each), all well under 1 MiB.
	MaxRecvMsgSize = 2 << 20
	// MaxConcurrentStreams bounds the calls one connection may have open
	// at once (a worker holds a session and a few log streams).
	MaxConcurrentStreams = 1024
)

// tlsServerBuffers are the options of the servers that speak TLS. gRPC
// reads each connection through a 32 KiB buffer of its own by default; over
// TLS it saves nothing, because a TLS connection already holds a decrypted
// record and hands out at most one record per read; with 2,000 workers
// connected the buffers held 129 MiB of the manager's heap (test/schedbench).
// Unbuffered, the HTTP/2 framer reads straight from the TLS record.
func tlsServerBuffers() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ReadBufferSize(0)}
}

// serverLimits are the options every manager gRPC server is created with.
func serverLimits() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
	}
}
