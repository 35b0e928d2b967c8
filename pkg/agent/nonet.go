package agent

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// A node without networking (no container networks: the simulated
// runtime) has no use for the network state its session messages carry,
// every service's DNS record among it, and it used to decode it all and
// drop it. At 5,000 simulated nodes in one process and 1,000 services,
// that was 5 million records and a third of the process's CPU (make
// bench-scheduler, CPU profile of the worker), on the cores the managers
// under test need. Such a node's session decodes its messages with
// noNetworkState, which skips the network fields unread. The manager
// sends the same messages either way.

// networkFields are the SessionMessage fields that carry network state.
var networkFields = func() map[protowire.Number]bool {
	fields := (&minkepb.SessionMessage{}).ProtoReflect().Descriptor().Fields()
	out := map[protowire.Number]bool{}
	for _, name := range []string{"network", "network_delta"} {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil {
			panic("agent: SessionMessage has no field " + name)
		}
		out[fd.Number()] = true
	}
	return out
}()

// noNetworkState is gRPC's protobuf codec, except that it decodes a
// SessionMessage without its network fields (see networkFields).
type noNetworkState struct{ encoding.CodecV2 }

// sessionCallOptions are the options of a session's stream: a node without
// networking decodes no network state.
func (a *Agent) sessionCallOptions() []grpc.CallOption {
	if a.net != nil {
		return nil
	}
	return []grpc.CallOption{grpc.ForceCodecV2(noNetworkState{encoding.GetCodecV2(grpcproto.Name)})}
}

func (c noNetworkState) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*minkepb.SessionMessage)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	kept, err := withoutFields(buf.ReadOnlyData(), networkFields)
	if err != nil {
		return err
	}
	return proto.Unmarshal(kept, m)
}

// withoutFields returns the encoded message b less every occurrence of
// the top-level fields in drop.
func withoutFields(b []byte, drop map[protowire.Number]bool) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("agent: session message: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, fmt.Errorf("agent: session message field %d: %w", num, protowire.ParseError(m))
		}
		if !drop[num] {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return out, nil
}
