package netharness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrTimeout is wrapped by errors returned when a bounded wait (Proc.Wait,
// Host.Exec) runs out of time.
var ErrTimeout = errors.New("netharness: timeout")

const (
	// cmdTimeout bounds every `ip` invocation.
	cmdTimeout = 10 * time.Second
	// killTimeout bounds the wait for a SIGKILLed process to be reaped.
	killTimeout = 10 * time.Second
	// maxHosts keeps addresses inside one /24 and names within IFNAMSIZ.
	maxHosts = 200
	// logTailLines is how much of each process log a failed test shows.
	logTailLines = 50
)

// testHookHostCreated, if set, runs after each host is created in New; an
// error makes New fail there. It lets the package's own tests check that a
// half-built harness is cleaned up.
var testHookHostCreated func(h *Harness, i int) error

// Harness is a set of hosts (network namespaces) on a private bridge. Its
// methods may be called from any goroutine, except that, like testing.T,
// methods that fail the test (New, Start, Restart, Partition, ...) must be
// called from the test's goroutine when they fail.
type Harness struct {
	t      testing.TB
	id     string // random, names every object: mk<id>-<i>, mk<id>v<i>, mkbr<id>
	bridge string
	subnet netip.Prefix
	logDir string
	hosts  []*Host

	// forks carries process starts to the forker goroutine; closed by Close.
	forks chan forkReq

	mu      sync.Mutex
	closed  bool
	procs   []*Proc
	runs    []procRun       // every process ever started, for Leaks
	bridges map[string]bool // extra partition bridges that currently exist
	// closeLeaks are the processes Close found inside the namespaces just
	// before deleting them.
	closeLeaks []string
	logSeq     int
}

// Host is one network namespace of a Harness.
type Host struct {
	h      *Harness
	index  int
	name   string // netns name
	veth   string // root-namespace end of the veth; the namespace end is eth0
	ip     netip.Addr
	nsID   string // "net:[inode]", as /proc/PID/ns/net reads for members
	master string // bridge the veth is on; guarded by h.mu
}

// New creates n hosts joined by a fresh bridge and registers their removal
// with t.Cleanup. It skips the test when not root or when `ip` or `nsenter`
// is missing.
func New(t testing.TB, n int) *Harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netharness: needs root to create network namespaces, veths and bridges")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netharness: %s not found in PATH (install iproute2 and util-linux)", tool)
		}
	}
	if n < 1 || n > maxHosts {
		t.Fatalf("netharness: New(%d): host count must be 1..%d", n, maxHosts)
	}
	// TempDir first: its removal is registered before our Cleanup, so it runs
	// after it and the logs are still there for the failure dump.
	logDir := t.TempDir()

	id, err := freshID()
	if err != nil {
		t.Fatalf("netharness: %v", err)
	}
	subnet, err := freeSubnet()
	if err != nil {
		t.Fatalf("netharness: %v", err)
	}
	h := &Harness{
		t:       t,
		id:      id,
		bridge:  "mkbr" + id,
		subnet:  subnet,
		logDir:  logDir,
		bridges: map[string]bool{},
		forks:   make(chan forkReq),
	}
	go h.forker()
	t.Cleanup(h.Close)

	if err := h.addBridge(h.bridge); err != nil {
		t.Fatalf("netharness: %v", err)
	}
	ip := subnet.Addr()
	for i := 0; i < n; i++ {
		ip = ip.Next()
		hst := &Host{
			h:      h,
			index:  i,
			name:   fmt.Sprintf("mk%s-%d", id, i),
			veth:   fmt.Sprintf("mk%sv%d", id, i),
			ip:     ip,
			master: h.bridge,
		}
		h.hosts = append(h.hosts, hst) // before creating, so Close knows it
		if err := hst.create(); err != nil {
			t.Fatalf("netharness: host %d: %v", i, err)
		}
		if testHookHostCreated != nil {
			if err := testHookHostCreated(h, i); err != nil {
				t.Fatalf("netharness: host %d: %v", i, err)
			}
		}
	}
	t.Logf("netharness: %d hosts on %s, bridge %s, netns mk%s-*", n, subnet, h.bridge, id)
	return h
}

func (hst *Host) create() error {
	steps := [][]string{
		{"netns", "add", hst.name},
		{"link", "add", hst.veth, "type", "veth", "peer", "name", "eth0", "netns", hst.name},
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return err
		}
	}
	disableIPv6(hst.veth)
	steps = [][]string{
		{"link", "set", hst.veth, "master", hst.h.bridge, "up"},
		{"-n", hst.name, "addr", "add", netip.PrefixFrom(hst.ip, hst.h.subnet.Bits()).String(), "dev", "eth0"},
		{"-n", hst.name, "link", "set", "eth0", "up"},
		{"-n", hst.name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return err
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(hst.NetnsPath(), &st); err != nil {
		return fmt.Errorf("stat netns: %w", err)
	}
	hst.nsID = fmt.Sprintf("net:[%d]", st.Ino)
	return nil
}

// addBridge creates an up bridge with no addresses at all.
func (h *Harness) addBridge(name string) error {
	if _, err := ipCmd("link", "add", "name", name, "type", "bridge"); err != nil {
		return err
	}
	disableIPv6(name)
	_, err := ipCmd("link", "set", name, "up")
	return err
}

// Host returns host i; it fails the test if i is out of range.
func (h *Harness) Host(i int) *Host {
	h.t.Helper()
	if i < 0 || i >= len(h.hosts) {
		h.t.Fatalf("netharness: host %d out of range 0..%d", i, len(h.hosts)-1)
	}
	return h.hosts[i]
}

// Len is the number of hosts.
func (h *Harness) Len() int { return len(h.hosts) }

// Subnet is the /24 the hosts' addresses come from.
func (h *Harness) Subnet() netip.Prefix { return h.subnet }

// Name is the network namespace's name.
func (hst *Host) Name() string { return hst.name }

// IP is the host's address on eth0, e.g. "10.23.7.1".
func (hst *Host) IP() string { return hst.ip.String() }

// Index is the host's position in its Harness.
func (hst *Host) Index() int { return hst.index }

// NetnsPath is the namespace file, for `nsenter --net=` or setns(2).
func (hst *Host) NetnsPath() string { return filepath.Join("/run/netns", hst.name) }

// KillHost SIGKILLs every process the harness started on host i (their whole
// process groups), waits for them, then kills anything else still running in
// the host's namespace, as a power cut would. Procs can be Restarted later.
func (h *Harness) KillHost(i int) {
	h.t.Helper()
	hst := h.Host(i)
	h.mu.Lock()
	procs := append([]*Proc(nil), h.procs...)
	h.mu.Unlock()
	for _, p := range procs {
		if p.host == hst {
			p.Kill()
		}
	}
	if err := killNetnsProcs(map[string]int{hst.nsID: i}); err != nil {
		h.t.Errorf("netharness: KillHost(%d): %v", i, err)
	}
}

// Close kills every process, dumps their logs if the test failed, and
// removes the namespaces, veths and bridges. It is idempotent and is
// registered with t.Cleanup by New; call it directly only to tear down early.
func (h *Harness) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	procs := append([]*Proc(nil), h.procs...)
	h.mu.Unlock()

	for _, p := range procs {
		p.Kill()
	}
	close(h.forks) // no start can be in flight: they check closed under h.mu
	ids := map[string]int{}
	for _, hst := range h.hosts {
		if hst.nsID != "" {
			ids[hst.nsID] = hst.index
		}
	}
	if err := killNetnsProcs(ids); err != nil {
		h.t.Errorf("netharness: cleanup: %v", err)
	}
	// The last look inside the namespaces: once deleted, their inode
	// numbers may be reused by anyone's (see Leaks).
	closeLeaks := describeNetnsProcs(netnsProcs(ids))
	h.mu.Lock()
	h.closeLeaks = closeLeaks
	h.mu.Unlock()
	if h.t.Failed() {
		for _, p := range procs {
			h.t.Logf("netharness: last %d lines of %s (host %d, %s):\n%s",
				logTailLines, p.name, p.host.index, p.logPath, tail(p.Log(), logTailLines))
		}
	}

	netns, links, err := existing(h)
	if err != nil {
		h.t.Errorf("netharness: cleanup: %v", err)
	}
	for _, hst := range h.hosts {
		if netns[hst.name] {
			if _, err := ipCmd("netns", "del", hst.name); err != nil {
				h.t.Errorf("netharness: cleanup: %v", err)
			}
		}
	}
	// Deleting the namespace destroys the veth pair asynchronously; delete
	// what is left of it now so nothing outlives Close.
	for _, hst := range h.hosts {
		if links[hst.veth] {
			if _, err := ipCmd("link", "del", hst.veth); err != nil && linkExists(hst.veth) {
				h.t.Errorf("netharness: cleanup: %v", err)
			}
		}
	}
	h.mu.Lock()
	bridges := []string{h.bridge}
	for b := range h.bridges {
		bridges = append(bridges, b)
	}
	h.mu.Unlock()
	for _, b := range bridges {
		if links[b] {
			if _, err := ipCmd("link", "del", b); err != nil {
				h.t.Errorf("netharness: cleanup: %v", err)
			}
		}
	}
}

// ipCmd runs `ip args...` and returns its output; the error carries it too.
func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// disableIPv6 keeps the root namespace from getting a link-local address on
// the hosts' segment. Best effort: without IPv6 there is nothing to disable.
func disableIPv6(link string) {
	_ = os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", link, "disable_ipv6"), []byte("1"), 0o644)
}

func linkExists(name string) bool {
	_, err := ipCmd("link", "show", "dev", name)
	return err == nil
}

// freshID returns 6 hex digits not used by any netns or link yet.
func freshID() (string, error) {
	for range 10 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := hex.EncodeToString(b[:])
		netns, links, err := listNames()
		if err != nil {
			return "", err
		}
		taken := false
		for name := range netns {
			taken = taken || strings.HasPrefix(name, "mk"+id)
		}
		for name := range links {
			taken = taken || strings.HasPrefix(name, "mk"+id) || strings.HasPrefix(name, "mkbr"+id)
		}
		if !taken {
			return id, nil
		}
	}
	return "", errors.New("no unused harness id after 10 tries")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type forkReq struct {
	cmd *exec.Cmd
	err chan<- error
}

// forker starts every process of the harness from one OS thread that lives
// until Close. Pdeathsig fires when the thread that forked a child exits,
// not the process; forking from arbitrary threads would let any goroutine
// that exits while locked to its thread (Host.Dial's does) kill processes.
func (h *Harness) forker() {
	// Never unlocked: the thread exits with this goroutine, after Close has
	// killed everything, and any straggler gets its SIGKILL then.
	runtime.LockOSThread()
	for r := range h.forks {
		r.err <- r.cmd.Start()
	}
}
