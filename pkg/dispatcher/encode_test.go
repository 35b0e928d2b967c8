package dispatcher

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// onWire encodes o as the Dispatcher's gRPC server does and decodes it as
// a worker does. It fails t unless the decoded message equals o's, and
// reports whether the encoding used shared bytes. nil for a nil o.
func onWire(t *testing.T, o *outgoing) (*minkepb.SessionMessage, bool) {
	t.Helper()
	if o == nil {
		return nil, false
	}
	bufs, err := codec{}.Marshal(o)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	got := &minkepb.SessionMessage{}
	if err := proto.Unmarshal(bufs.Materialize(), got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !proto.Equal(got, o.msg) {
		t.Fatalf("decoded\n%v\nwant\n%v", got, o.msg)
	}
	_, _, _, _, shared := o.split()
	return got, shared
}

// TestSharedRecordsEncodedOnce: two sessions that send the same
// cluster-wide delta send the same bytes for its records, encoded once;
// a message whose records are not the shared ones is encoded whole and
// still decodes as itself; so does one without network records.
func TestSharedRecordsEncodedOnce(t *testing.T) {
	w := newDeltaWorld(t, 5)
	d := New(Config{Store: w.st, Logger: slog.New(slog.DiscardHandler)})
	sessions := []*sessionState{{nodeID: "n1", deltas: true}, {nodeID: "n2", deltas: true}, {nodeID: "n3"}}
	next := func(s *sessionState, epoch uint64) (o *outgoing) {
		_ = w.st.View(func(tx raftstore.ReadTx) error { o = d.nextMessage(tx, s, epoch); return nil })
		return o
	}
	epoch := d.fan.netEpoch.Add(1)
	for _, s := range sessions {
		if _, shared := onWire(t, next(s, epoch)); !shared {
			t.Fatalf("first message of %s: encoded whole, want its services shared", s.nodeID)
		}
	}
	storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
		for i := range 5 {
			id := fmt.Sprintf("new%d", i)
			if err := tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.ServiceSpec{Name: id},
				Endpoint: &minkepb.Endpoint{VirtualIp: fmt.Sprintf("172.30.1.%d", i+1)}}); err != nil {
				return err
			}
		}
		return nil
	})
	epoch = d.fan.netEpoch.Add(1)
	a, b := next(sessions[0], epoch), next(sessions[1], epoch)
	if a.delta == nil || a.delta != b.delta || len(a.msg.GetNetworkDelta().GetServices()) != 5 {
		t.Fatalf("two sessions after 5 new services: deltas %p and %p with %d services; want the same one with 5", a.delta, b.delta,
			len(a.msg.GetNetworkDelta().GetServices()))
	}
	ea, err := codec{}.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := codec{}.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ea) != 2 || len(eb) != 2 || &ea[1].ReadOnlyData()[0] != &eb[1].ReadOnlyData()[0] {
		t.Fatalf("encodings of %d and %d buffers; want each its own fields and then the same shared bytes", len(ea), len(eb))
	}
	onWire(t, a)
	onWire(t, b)

	// Records that are not the shared slices: encoded whole.
	c := &outgoing{msg: proto.Clone(a.msg).(*minkepb.SessionMessage), delta: a.delta}
	c.msg.NetworkDelta.Services = slices.Clone(a.msg.GetNetworkDelta().GetServices())
	if _, shared := onWire(t, c); shared {
		t.Fatal("a message with its own copy of the records used the shared encoding")
	}
	// No network records at all.
	if _, shared := onWire(t, &outgoing{msg: &minkepb.SessionMessage{TasksDelta: true, RemovedTaskIds: []string{"t1"}}, delta: a.delta}); shared {
		t.Fatal("a message without network records used the shared encoding")
	}
}
