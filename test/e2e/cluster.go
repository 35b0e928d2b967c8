//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// Binaries are the programs a Cluster runs; TestMain builds them.
type Binaries struct {
	Manager, Worker, Swarmctl string
}

// Set once by TestMain, before any test runs.
var (
	// Bins are the programs under test.
	Bins Binaries
	// HelloTar is examples/hello as an OCI image tarball tagged
	// hello:latest.
	HelloTar string
)

// HostUnsupported says why this host cannot run the tests, or "" if it can.
func HostUnsupported() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("e2e tests run containers (namespaces, cgroups, overlayfs) and need root; running as uid %d", os.Geteuid())
	}
	if len(clustertest.CgroupMounts()) == 0 {
		return "e2e tests need a mounted cgroup hierarchy; none in /proc/self/mountinfo"
	}
	return ""
}

// RequireHost skips t unless the host can run the tests.
func RequireHost(t testing.TB) {
	t.Helper()
	if why := HostUnsupported(); why != "" {
		t.Skip(why)
	}
	if Bins.Manager == "" || HelloTar == "" {
		t.Fatal("e2e: binaries and image not built (TestMain sets e2e.Bins and e2e.HelloTar)")
	}
}

// Bounds on what the harness waits for. Every wait polls against a
// deadline; none of these is a sleep.
const (
	ctlTimeout   = 45 * time.Second // one swarmctl invocation
	startTimeout = 30 * time.Second // a node from exec to READY
	stopTimeout  = 10 * time.Second // SIGTERM to exit, before SIGKILL
	pollInterval = 50 * time.Millisecond
	// testBound caps every wait of a test (not of a benchmark), so that
	// a test ends within about this long plus its cleanup.
	testBound = 60 * time.Second
)

// Cluster owns the processes of one test and everything they leave on the
// host. Its methods report failures to the test it was made for; a subtest
// uses With(t). Use it from one goroutine at a time.
type Cluster struct {
	t testing.TB
	*cluster
}

type cluster struct {
	dir string

	procs    []*Proc
	nodeIDs  []string
	socket   string // Control API of the first manager
	ports    clustertest.Ports
	deadline time.Time // zero: none
}

// NewCluster returns an empty cluster whose cleanup, at the end of t, stops
// every process it started and removes their containers, overlay mounts
// and cgroups. It skips t unless the host can run containers.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	RequireHost(t)
	c := &Cluster{t: t, cluster: &cluster{dir: t.TempDir()}}
	if _, ok := t.(*testing.T); ok {
		c.deadline = time.Now().Add(testBound)
	}
	// Registered after TempDir's own cleanup, so it runs before the
	// directory is removed (cleanups run last-in first-out).
	t.Cleanup(c.cleanup)
	return c
}

// With returns the cluster reporting to t, a subtest of the cluster's test.
func (c *Cluster) With(t testing.TB) *Cluster { return &Cluster{t: t, cluster: c.cluster} }

// bound shortens d to what is left of the test's time.
func (c *Cluster) bound(d time.Duration) time.Duration {
	if c.deadline.IsZero() {
		return d
	}
	return max(min(d, time.Until(c.deadline)), 0)
}

// Dir is the cluster's directory: data dirs and logs live below it.
func (c *Cluster) Dir() string { return c.dir }

// Proc is a manager or worker process.
type Proc struct {
	Name    string
	DataDir string
	NodeID  string
	// ListenAddr is a manager's worker-facing gRPC address.
	ListenAddr string
	// Socket is a manager's Control API socket.
	Socket string

	bin, logPath string
	args         []string
	cmd          *exec.Cmd
	done         chan struct{}
	waitErr      error
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process id of the current run.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

func (c *Cluster) start(p *Proc) error {
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s %s\n", filepath.Base(p.bin), strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, so do its nodes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		p.waitErr = cmd.Wait()
		close(done)
	}(p.done)
	return nil
}

// Kill sends sig to the process and waits, up to bound, for it to exit.
func (c *Cluster) Kill(p *Proc, sig syscall.Signal, bound time.Duration) {
	c.t.Helper()
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	bound = c.bound(bound)
	select {
	case <-p.done:
	case <-time.After(bound):
		c.t.Fatalf("%s did not exit within %s of %v", p.Name, bound, sig)
	}
}

// stop sends SIGTERM, then SIGKILL after stopTimeout.
func (p *Proc) stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// ManagerOptions are the flags of a manager that vary between tests.
type ManagerOptions struct {
	Hostname string
	Worker   bool // --worker: also run containers
	// Args are more flags, e.g. --registry-config FILE.
	Args []string
}

// StartManager starts a manager on 127.0.0.1 with free ports and waits
// until its node is READY. The first manager's socket becomes the one Ctl
// talks to.
func (c *Cluster) StartManager(name string, o ManagerOptions) *Proc {
	c.t.Helper()
	p := &Proc{Name: name, DataDir: filepath.Join(c.dir, name), bin: Bins.Manager,
		logPath: filepath.Join(c.dir, name+".log")}
	p.Socket = filepath.Join(p.DataDir, "ctl.sock")
	hostname := o.Hostname
	if hostname == "" {
		hostname = name
	}
	// A port picked free can be taken before the manager binds it (other
	// tests run on this machine too): pick new ones and try again.
	for attempt := 1; ; attempt++ {
		ports := c.freePorts("127.0.0.1", 4)
		p.ListenAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
		p.args = []string{"--data-dir", p.DataDir, "--listen-addr", p.ListenAddr,
			"--raft-addr", "127.0.0.1:" + strconv.Itoa(ports[1]),
			"--gossip-addr", "127.0.0.1:" + strconv.Itoa(ports[2]),
			"--registry-addr", "127.0.0.1:" + strconv.Itoa(ports[3]),
			"--control-socket", p.Socket, "--hostname", hostname}
		if o.Worker {
			p.args = append(p.args, "--worker")
		}
		p.args = append(p.args, o.Args...)
		err := c.startAndWait(p, p.Socket)
		if err == nil {
			break
		}
		if attempt < 3 && errors.Is(err, errAddrInUse) {
			// Start afresh: Raft may have stored the address it could not use.
			c.t.Logf("%s: %v; retrying with other ports", name, err)
			p.NodeID = ""
			if err := os.RemoveAll(p.DataDir); err != nil {
				c.t.Fatal(err)
			}
			continue
		}
		c.t.Fatalf("%s: %v", name, err)
	}
	if c.socket == "" {
		c.socket = p.Socket
	}
	return p
}

// StartWorker starts a worker on ip (a 127.0.0.0/8 address) that joins mgr
// with token, and waits until mgr sees it READY.
func (c *Cluster) StartWorker(name, ip, token string, mgr *Proc) *Proc {
	c.t.Helper()
	p := &Proc{Name: name, DataDir: filepath.Join(c.dir, name), bin: Bins.Worker,
		logPath: filepath.Join(c.dir, name+".log")}
	for attempt := 1; ; attempt++ {
		port := c.freePorts(ip, 1)[0]
		p.args = []string{"--data-dir", p.DataDir, "--join", mgr.ListenAddr, "--token", token,
			"--advertise-addr", ip, "--gossip-addr", net.JoinHostPort(ip, strconv.Itoa(port)),
			"--hostname", name}
		err := c.startAndWait(p, mgr.Socket)
		if err == nil {
			return p
		}
		if attempt < 3 && errors.Is(err, errAddrInUse) {
			c.t.Logf("%s: %v; retrying with another port", name, err)
			continue
		}
		c.t.Fatalf("%s: %v", name, err)
	}
}

// Restart starts p again with the same flags after it exited, and waits
// until its node is READY.
func (c *Cluster) Restart(p *Proc) {
	c.t.Helper()
	if !p.Exited() {
		c.t.Fatalf("restart %s: still running", p.Name)
	}
	socket := p.Socket
	if socket == "" {
		socket = c.socket
	}
	if err := c.startAndWait(p, socket); err != nil {
		c.t.Fatalf("restart %s: %v", p.Name, err)
	}
}

var errAddrInUse = errors.New("address already in use")

// startAndWait starts p and waits until the manager at socket lists p's
// node as READY, or p exits.
func (c *Cluster) startAndWait(p *Proc, socket string) error {
	logStart := fileSize(p.logPath)
	c.procs = appendOnce(c.procs, p)
	if err := c.start(p); err != nil {
		return err
	}
	bound := c.bound(startTimeout)
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		if p.Exited() {
			out := readFrom(p.logPath, logStart)
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("%w (exit: %v)", errAddrInUse, p.waitErr)
			}
			return fmt.Errorf("exited before it was ready: %v; log:\n%s", p.waitErr, out)
		}
		if p.NodeID == "" {
			if b, err := os.ReadFile(filepath.Join(p.DataDir, "node-id")); err == nil {
				p.NodeID = strings.TrimSpace(string(b))
				if p.NodeID != "" && !slices.Contains(c.nodeIDs, p.NodeID) {
					c.nodeIDs = append(c.nodeIDs, p.NodeID)
				}
			}
		}
		if p.NodeID != "" {
			nodes, err := c.nodesAt(socket)
			if err == nil {
				for _, n := range nodes {
					if n.GetMeta().GetId() == p.NodeID && n.GetStatus().GetState() == minkepb.NodeStatus_READY {
						return nil
					}
				}
				last = fmt.Sprintf("node %s not READY in %d nodes", p.NodeID, len(nodes))
			} else {
				last = err.Error()
			}
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("not ready within %s (last: %s); log:\n%s", bound, last, readFrom(p.logPath, logStart))
}

// freePorts returns n ports that are free on ip for both TCP and UDP
// (memberlist binds both) and that this cluster has not handed out yet.
func (c *Cluster) freePorts(ip string, n int) []int {
	c.t.Helper()
	return c.ports.Free(c.t, ip, n)
}

// Result is the outcome of one swarmctl run.
type Result struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("swarmctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Ctl runs swarmctl against the first manager and returns what it did; it
// fails the test only if swarmctl cannot run or outlives ctlTimeout.
func (c *Cluster) Ctl(args ...string) Result {
	c.t.Helper()
	r, err := c.ctlAt(c.socket, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// MustCtl is Ctl that also fails the test unless swarmctl exits 0; it
// returns stdout.
func (c *Cluster) MustCtl(args ...string) string {
	c.t.Helper()
	r := c.Ctl(args...)
	if r.Code != 0 {
		c.t.Fatalf("%s", r)
	}
	return r.Stdout
}

func (c *Cluster) ctlAt(socket string, args ...string) (Result, error) {
	bound := c.bound(ctlTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, Bins.Swarmctl, args...)
	cmd.Env = append(os.Environ(), "MINKE_HOST="+socket)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("swarmctl %s: still running after %s\n%s", strings.Join(args, " "), bound, r)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("swarmctl %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// JoinToken returns the cluster's worker join token.
func (c *Cluster) JoinToken() string {
	c.t.Helper()
	return strings.TrimSpace(c.MustCtl("cluster", "join-token", "worker"))
}

// Tasks lists a service's tasks (`service ps --format json`).
func (c *Cluster) Tasks(service string) []*minkepb.Task {
	c.t.Helper()
	tasks, err := clustertest.DecodeArray(c.MustCtl("service", "ps", service, "--format", "json"), func() *minkepb.Task { return new(minkepb.Task) })
	if err != nil {
		c.t.Fatalf("service ps %s: %v", service, err)
	}
	return tasks
}

// Nodes lists the nodes (`node ls --format json`).
func (c *Cluster) Nodes() []*minkepb.Node {
	c.t.Helper()
	nodes, err := c.nodesAt(c.socket)
	if err != nil {
		c.t.Fatal(err)
	}
	return nodes
}

func (c *Cluster) nodesAt(socket string) ([]*minkepb.Node, error) {
	r, err := c.ctlAt(socket, "node", "ls", "--format", "json")
	if err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, errors.New(strings.TrimSpace(r.Stderr))
	}
	return clustertest.DecodeArray(r.Stdout, func() *minkepb.Node { return new(minkepb.Node) })
}

// Eventually polls cond until it reports true or bound (or the test's
// time) passes; then it fails the test with what and cond's last
// explanation.
func (c *Cluster) Eventually(bound time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	clustertest.Eventually(c.t, c.bound(bound), what, cond)
}

// PushHello pushes the hello image to the cluster's registry as
// hello:latest.
func (c *Cluster) PushHello() {
	c.t.Helper()
	out := c.MustCtl("image", "push", HelloTar)
	if !strings.HasPrefix(out, "hello:latest@sha256:") {
		c.t.Fatalf("image push printed %q, want hello:latest@sha256:…", out)
	}
}

// WaitRunning waits until service has exactly n running tasks, each with a
// live container process of this cluster, and returns those tasks.
func (c *Cluster) WaitRunning(service string, n int, bound time.Duration) []*minkepb.Task {
	c.t.Helper()
	var running []*minkepb.Task
	c.Eventually(bound, fmt.Sprintf("%d tasks of %s running", n, service), func() (bool, string) {
		running = clustertest.Running(c.Tasks(service))
		if len(running) != n {
			return false, fmt.Sprintf("%d running", len(running))
		}
		live := make(map[int]bool)
		for _, p := range c.ContainerProcs() {
			live[p.Pid] = true
		}
		for _, t := range running {
			if pid := int(t.GetStatus().GetContainer().GetPid()); !live[pid] {
				return false, fmt.Sprintf("task %s reports pid %d, not a live container process", t.GetMeta().GetId(), pid)
			}
		}
		return true, ""
	})
	return running
}

// ContainerProcs lists the live processes of the cluster's containers.
func (c *Cluster) ContainerProcs() []hostProc {
	return liveContainerProcs(c.knownNodeIDs())
}

// knownNodeIDs are the node IDs recorded at start, plus any node-id file a
// data dir holds (a process may have joined but never become READY).
func (c *Cluster) knownNodeIDs() []string {
	ids := slices.Clone(c.nodeIDs)
	for _, p := range c.procs {
		if b, err := os.ReadFile(filepath.Join(p.DataDir, "node-id")); err == nil {
			if id := strings.TrimSpace(string(b)); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// cleanup stops the cluster's processes and removes what their containers
// left on the host; anything it cannot remove fails the test.
func (c *Cluster) cleanup() {
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()

	ids := c.knownNodeIDs()
	// Containers and their shims outlive their node's process by design:
	// kill the containers; their shims then exit (and, orphaned, are
	// children of this subreaper to reap).
	shims := shimProcs(taskIDsOf(containerProcs(ids)))
	deadline := time.Now().Add(stopTimeout)
	for {
		procs := containerProcs(ids)
		for _, hp := range procs {
			if !hp.Zombie() {
				_ = syscall.Kill(hp.Pid, syscall.SIGKILL)
			}
			clustertest.ReapIfChild(hp.Pid)
		}
		if len(liveContainerProcs(ids)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			c.t.Errorf("cleanup: container processes still alive: %+v", liveContainerProcs(ids))
			break
		}
		time.Sleep(pollInterval)
	}
	for _, sp := range shims {
		for {
			clustertest.ReapIfChild(sp.Pid)
			if ppid, state, err := clustertest.ProcStat(sp.Pid); err != nil || (clustertest.Exited(state) && ppid != os.Getpid()) {
				break
			}
			if time.Now().After(deadline.Add(stopTimeout)) {
				c.t.Errorf("cleanup: shim %d of task %s still alive", sp.Pid, sp.TaskID)
				break
			}
			time.Sleep(pollInterval)
		}
	}
	for _, m := range clustertest.MountsUnder(c.dir) {
		if err := clustertest.Unmount(m.MountPoint); err != nil {
			c.t.Errorf("cleanup: unmounting %s: %v", m.MountPoint, err)
		}
	}
	for _, cg := range clustertest.NodeCgroups(ids...) {
		if err := clustertest.RemoveCgroup(cg); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	clustertest.RemoveNetworks(c.t, c.dir)
	if c.t.Failed() {
		for _, p := range c.procs {
			c.t.Logf("--- %s log (%s) ---\n%s", p.Name, p.logPath, tail(p.logPath, 64<<10))
		}
	}
}

func appendOnce(ps []*Proc, p *Proc) []*Proc {
	if slices.Contains(ps, p) {
		return ps
	}
	return append(ps, p)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) string {
	b, _ := os.ReadFile(path)
	if off > int64(len(b)) {
		off = 0
	}
	return string(b[off:])
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}
