package agent

import (
	"testing"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestNoNetworkStateSkipsOnlyNetworkFields: a node without networking
// decodes its session messages whole except their network state, including
// a network delta that arrives in two parts (the dispatcher appends the
// records it shares between sessions as a second occurrence of the field).
func TestNoNetworkStateSkipsOnlyNetworkFields(t *testing.T) {
	msg := &minkepb.SessionMessage{
		Tasks:          []*minkepb.Task{{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s1", NodeId: "n1"}},
		Node:           &minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}},
		ManagerToken:   "tok",
		CaCerts:        []byte("pem"),
		RegistryAddrs:  []string{"127.0.0.1:5000"},
		GossipKeyring:  &minkepb.GossipKeyring{Primary: []byte("k")},
		TasksDelta:     true,
		RemovedTaskIds: []string{"t0"},
		Network:        &minkepb.NetworkState{Services: []*minkepb.ServiceRecord{{Id: "s1", Name: "web", VirtualIp: "10.255.0.2"}}},
		NetworkDelta:   &minkepb.NetworkDelta{RemovedServices: []string{"s0"}},
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := proto.Marshal(&minkepb.NetworkDelta{Services: []*minkepb.ServiceRecord{{Id: "s2", Name: "db"}}})
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 142, protowire.BytesType)
	b = protowire.AppendBytes(b, shared)

	want := proto.Clone(msg).(*minkepb.SessionMessage)
	want.Network, want.NetworkDelta = nil, nil
	got := &minkepb.SessionMessage{}
	c := noNetworkState{encoding.GetCodecV2(grpcproto.Name)}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("decoded %v\nwant %v", got, want)
	}
	// The full decode of the same bytes holds both parts of the delta:
	// the test's message really carried them.
	full := &minkepb.SessionMessage{}
	if err := proto.Unmarshal(b, full); err != nil || len(full.GetNetworkDelta().GetServices()) != 1 || len(full.GetNetwork().GetServices()) != 1 {
		t.Fatalf("full decode: %v, %v", full.GetNetworkDelta(), err)
	}
	// Other messages decode as protobuf's codec decodes them.
	req := &minkepb.SessionRequest{}
	rb, _ := proto.Marshal(&minkepb.SessionRequest{NodeId: "n1", Deltas: true})
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(rb)}, req); err != nil || req.GetNodeId() != "n1" || !req.GetDeltas() {
		t.Fatalf("SessionRequest decoded as %v, %v", req, err)
	}
	// A truncated message is an error, not a partial message.
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:len(b)-3])}, &minkepb.SessionMessage{}); err == nil {
		t.Fatal("a truncated session message decoded without error")
	}
}
