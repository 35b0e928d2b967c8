package dispatcher

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Shared encodings. Every worker holds every service's record (its DNS
// server answers for all of them), so the records of a network-wide change
// go to every session: with 5,000 nodes and 1,000 services created, 5
// million records, and encoding them once per message was about a tenth
// of a busy leader's CPU (make bench-scheduler, CPU profile). Sessions
// that move between the same two generations send the same cluster-wide
// delta (netCache memoizes it), and new sessions the same cluster-wide
// records; those are encoded once, when the first session sends them,
// and every message is its own fields' encoding followed by those shared
// bytes.
//
// That is protobuf's wire format, not a format of ours: a message's
// encoding is its fields' encodings in any order, and a worker decodes the
// result as the message it would have got.

// ServerOptions are the options the gRPC server that serves the
// Dispatcher needs: its codec sends session messages with their shared
// encodings (see outgoing) and is protobuf's for everything else.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(codec{proto: encoding.GetCodecV2(grpcproto.Name)})}
}

// codec is gRPC's protobuf codec that also encodes an *outgoing.
type codec struct{ proto encoding.CodecV2 }

func (c codec) Name() string { return c.proto.Name() }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if o, ok := v.(*outgoing); ok {
		return o.encode()
	}
	return c.proto.Marshal(v)
}

// outgoing is a session message and the cluster-wide parts it shares with
// other sessions' messages: a NetworkDelta's ingress ports, services and
// their removals are delta's when delta is set; a complete NetworkState's
// ingress ports and services are state's.
type outgoing struct {
	msg   *minkepb.SessionMessage
	state *sharedNet
	delta *sharedDelta
}

// GetMsg is o's message; nil for a nil o.
func (o *outgoing) GetMsg() *minkepb.SessionMessage {
	if o == nil {
		return nil
	}
	return o.msg
}

// Field numbers of the shared parts, from the descriptors.
var (
	sessionFields = (&minkepb.SessionMessage{}).ProtoReflect().Descriptor().Fields()
	deltaFields   = (&minkepb.NetworkDelta{}).ProtoReflect().Descriptor().Fields()
	stateFields   = (&minkepb.NetworkState{}).ProtoReflect().Descriptor().Fields()
	fieldDelta    = sessionFields.ByName("network_delta")
	fieldState    = sessionFields.ByName("network")
	sharedInDelta = fieldSet(deltaFields, "ingress", "removed_ingress", "services", "removed_services")
	sharedInState = fieldSet(stateFields, "ingress", "services")
)

func fieldSet(fields protoreflect.FieldDescriptors, names ...protoreflect.Name) map[protoreflect.FieldNumber]bool {
	out := map[protoreflect.FieldNumber]bool{}
	for _, n := range names {
		out[fields.ByName(n).Number()] = true
	}
	return out
}

// encode is o.msg's wire encoding: the message's own fields, then the
// network field made of the session's own fields and the shared bytes.
func (o *outgoing) encode() (mem.BufferSlice, error) {
	field, inner, drop, tail, ok := o.split()
	if !ok {
		b, err := proto.Marshal(o.msg)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	own, err := proto.Marshal(without(inner, drop))
	if err != nil {
		return nil, err
	}
	rest := without(o.msg, map[protoreflect.FieldNumber]bool{field.Number(): true})
	n := uint64(len(own) + len(tail))
	head := make([]byte, 0, proto.Size(rest)+protowire.SizeTag(field.Number())+protowire.SizeVarint(n)+len(own))
	if head, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(head, rest); err != nil {
		return nil, err
	}
	head = protowire.AppendTag(head, field.Number(), protowire.BytesType)
	head = protowire.AppendVarint(head, n)
	head = append(head, own...)
	if len(tail) == 0 {
		return mem.BufferSlice{mem.SliceBuffer(head)}, nil
	}
	// The shared bytes are never written to: gRPC only reads a buffer it
	// is given, and a SliceBuffer's Free does nothing.
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(tail)}, nil
}

// split names the message's network field that holds shared records, that
// field's message, its fields that are shared and their encoding. ok is
// false when the message shares nothing, holds other records than the
// shared ones (not the same slices), or the shared encoding failed: the
// message is then encoded whole, which reports that error.
func (o *outgoing) split() (field protoreflect.FieldDescriptor, inner proto.Message, drop map[protoreflect.FieldNumber]bool, tail []byte, ok bool) {
	var err error
	switch nd, st := o.msg.GetNetworkDelta(), o.msg.GetNetwork(); {
	case nd != nil && o.delta != nil && o.delta.holds(nd):
		field, inner, drop = fieldDelta, nd, sharedInDelta
		tail, err = o.delta.encoded()
	case st != nil && o.state != nil && o.state.holds(st):
		field, inner, drop = fieldState, st, sharedInState
		tail, err = o.state.encoded()
	default:
		return nil, nil, nil, nil, false
	}
	return field, inner, drop, tail, err == nil
}

// without is a shallow copy of m without the fields in drop; it keeps
// every other field, those added to the message later included.
func without(m proto.Message, drop map[protoreflect.FieldNumber]bool) proto.Message {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !drop[fd.Number()] {
			dst.Set(fd, v)
		}
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return dst.Interface()
}

// sameSlice reports whether a and b are the same slice (not equal ones).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// holds reports whether nd's shared parts are d's.
func (d *sharedDelta) holds(nd *minkepb.NetworkDelta) bool {
	return sameSlice(nd.GetIngress(), d.ingress) && sameSlice(nd.GetRemovedIngress(), d.removedIngress) &&
		sameSlice(nd.GetServices(), d.services) && sameSlice(nd.GetRemovedServices(), d.removedServices)
}

// encoded is the encoding of d's shared parts as NetworkDelta fields,
// computed once.
func (d *sharedDelta) encoded() ([]byte, error) {
	return d.once(func() proto.Message {
		return &minkepb.NetworkDelta{Ingress: d.ingress, RemovedIngress: d.removedIngress,
			Services: d.services, RemovedServices: d.removedServices}
	})
}

// holds reports whether st's shared parts are s's.
func (s *sharedNet) holds(st *minkepb.NetworkState) bool {
	return sameSlice(st.GetIngress(), s.state.GetIngress()) && sameSlice(st.GetServices(), s.state.GetServices())
}

// encoded is the encoding of s's ingress ports and services as
// NetworkState fields, computed once.
func (s *sharedNet) encoded() ([]byte, error) {
	return s.once(func() proto.Message {
		return &minkepb.NetworkState{Ingress: s.state.GetIngress(), Services: s.state.GetServices()}
	})
}

// encodedPart is a shared part's bytes, computed on first use.
type encodedPart struct {
	done sync.Once
	enc  []byte
	err  error
}

// once returns the encoding of the message part returns, encoded on the
// first call only.
func (e *encodedPart) once(part func() proto.Message) ([]byte, error) {
	e.done.Do(func() { e.enc, e.err = proto.Marshal(part()) })
	return e.enc, e.err
}
