package clustertest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// DecodeArray decodes swarmctl's --format json output, an array of
// protojson objects, into messages made by alloc. Unknown fields are
// ignored.
func DecodeArray[T proto.Message](s string, alloc func() T) ([]T, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raws); err != nil {
		return nil, fmt.Errorf("decoding %q: %w", s, err)
	}
	out := make([]T, len(raws))
	for i, raw := range raws {
		out[i] = alloc()
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", raw, err)
		}
	}
	return out, nil
}

// Running returns the tasks that run and are meant to.
func Running(tasks []*minkepb.Task) []*minkepb.Task {
	var out []*minkepb.Task
	for _, t := range tasks {
		if t.GetDesiredState() == minkepb.TaskState_RUNNING && t.GetStatus().GetState() == minkepb.TaskState_RUNNING {
			out = append(out, t)
		}
	}
	return out
}

// Ports hands out ports that are free on an address and that it has not
// handed out before. The zero value is ready to use; a Ports is not safe
// for concurrent use.
type Ports struct {
	used map[string]bool // as ip:port
}

// Free returns n ports that are free on ip for both TCP and UDP
// (memberlist binds both). It fails tb if it cannot find them.
func (p *Ports) Free(tb testing.TB, ip string, n int) []int {
	tb.Helper()
	if p.used == nil {
		p.used = make(map[string]bool)
	}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			tb.Fatalf("no free port on %s", ip)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			tb.Fatalf("picking a port on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		key := net.JoinHostPort(ip, strconv.Itoa(port))
		u, err := net.ListenPacket("udp", key)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if p.used[key] {
			continue
		}
		p.used[key] = true
		ports = append(ports, port)
	}
	return ports
}

// PollInterval is how often Eventually checks its condition.
const PollInterval = 50 * time.Millisecond

// Eventually polls cond every PollInterval until it reports true; once
// bound has passed it fails tb with what and cond's last explanation.
func Eventually(tb testing.TB, bound time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s, still not %s: %s", bound, what, why)
		}
		time.Sleep(PollInterval)
	}
}

// NodeIDsUnder reads the node-id files of the data dirs directly below
// dir: every node that ever joined, READY or not.
func NodeIDsUnder(dir string) []string {
	var ids []string
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "node-id"))
	for _, f := range matches {
		if b, err := os.ReadFile(f); err == nil {
			if id := strings.TrimSpace(string(b)); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// LastRun is the part of a netharness process log written by its last
// run.
func LastRun(log string) string {
	if i := strings.LastIndex(log, "=== netharness: run "); i >= 0 {
		return log[i:]
	}
	return log
}
