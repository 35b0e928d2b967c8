package membership

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	tests := []Meta{
		{Role: RoleManager, APIAddr: "10.0.0.1:4242"},
		{Role: RoleWorker},
		{Role: RoleWorker, Keys: []string{"0011223344556677", "8899aabbccddeeff"}},
	}
	for _, want := range tests {
		t.Run(want.Role, func(t *testing.T) {
			b, err := encodeMeta(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeMeta(b)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("decode(encode(%+v)) = %+v, %v", want, got, err)
			}
		})
	}
	if _, err := decodeMeta([]byte("{not json")); !errors.Is(err, ErrBadMeta) {
		t.Errorf("decode garbage = %v, want ErrBadMeta", err)
	}
	if got, err := decodeMeta(nil); err != nil || !reflect.DeepEqual(got, Meta{}) {
		t.Errorf("decode(nil) = %+v, %v", got, err)
	}
	// Newer peers may add fields; older readers must ignore them.
	if got, err := decodeMeta([]byte(`{"v":2,"r":"worker","x":"new"}`)); err != nil || got.Role != RoleWorker {
		t.Errorf("decode with unknown field = %+v, %v", got, err)
	}
}

func TestEventQueueDropsOldest(t *testing.T) {
	q := newEventQueue(2)
	for i, id := range []string{"a", "b", "c"} {
		dropped := q.push(Event{Kind: Join, NodeID: id})
		if dropped != (i == 2) {
			t.Errorf("push %s dropped = %v", id, dropped)
		}
	}
	q.close()
	q.push(Event{Kind: Join, NodeID: "after-close"}) // must not panic
	var got []string
	for ev := range q.ch {
		got = append(got, ev.NodeID)
	}
	if strings.Join(got, ",") != "b,c" {
		t.Errorf("queued = %v, want [b c]", got)
	}
}

func TestSlogWriterLevels(t *testing.T) {
	var buf syncBuffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("[DEBUG] memberlist: probing")
	l.Printf("[WARN] memberlist: suspect node")
	l.Printf("[ERR] memberlist: failed")
	l.Printf("no tag")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg=probing`,
		`level=WARN msg="suspect node"`,
		`level=ERROR msg=failed`,
		`level=INFO msg="no tag"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output missing %q:\n%s", want, out)
		}
	}
}
