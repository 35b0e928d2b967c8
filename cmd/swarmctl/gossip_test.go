package main

import (
	"context"
	"strings"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// The fake's gossip key state: a rotation that the fake advances one phase
// per status read.
type fakeGossip struct {
	statuses []*minkepb.GossipKeyStatus
	rotated  bool
}

var fakeGossipStates = map[*fakeAPI]*fakeGossip{}

func (f *fakeAPI) gossip() *fakeGossip {
	if fakeGossipStates[f] == nil {
		fakeGossipStates[f] = &fakeGossip{}
	}
	return fakeGossipStates[f]
}

var _ gossipKeyAPI = (*fakeAPI)(nil)

func (f *fakeAPI) RotateGossipKey(context.Context) (*minkepb.GossipKeyStatus, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.gossip().rotated = true
	return &minkepb.GossipKeyStatus{Primary: "aaaa", Keys: []string{"aaaa", "bbbb"}, Rotating: true, NewKey: "bbbb"}, nil
}

func (f *fakeAPI) GossipKeyStatus(context.Context) (*minkepb.GossipKeyStatus, error) {
	g := f.gossip()
	if len(g.statuses) == 0 {
		return &minkepb.GossipKeyStatus{Primary: "bbbb", Keys: []string{"bbbb"}}, nil
	}
	st := g.statuses[0]
	g.statuses = g.statuses[1:]
	return st, nil
}

func (f *fakeAPI) WaitGossipKeyRotation(ctx context.Context, progress func(*minkepb.GossipKeyStatus)) (*minkepb.GossipKeyStatus, error) {
	for {
		st, _ := f.GossipKeyStatus(ctx)
		progress(st)
		if !st.GetRotating() {
			return st, nil
		}
	}
}

func TestRotateGossipKeyCommand(t *testing.T) {
	f := &fakeAPI{}
	f.gossip().statuses = []*minkepb.GossipKeyStatus{
		{Primary: "aaaa", Keys: []string{"aaaa", "bbbb"}, Rotating: true, NewKey: "bbbb", Lagging: []string{"node1"}},
		{Primary: "bbbb", Keys: []string{"bbbb", "aaaa"}, Rotating: true, NewKey: "bbbb", Phase: minkepb.GossipKeyRotation_USE},
	}
	code, out, errOut, _ := runFake(t, f, "cluster", "rotate-gossip-key")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"gossip key rotation started: aaaa -> bbbb",
		"installing the new key on every node; waiting for 1 node(s): node1",
		"switching every node to the new key (old key still accepted)",
		"gossip key rotated: every node now uses bbbb",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	f = &fakeAPI{}
	code, out, _, _ = runFake(t, f, "cluster", "rotate-gossip-key", "--status")
	if code != 0 || strings.TrimSpace(out) != "gossip key bbbb (no rotation running)" || f.gossip().rotated {
		t.Errorf("--status: exit %d, output %q, rotated %v", code, out, f.gossip().rotated)
	}
}
