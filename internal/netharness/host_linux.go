package netharness

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exec runs a short command inside the host's network namespace and returns
// its combined output. The command (its whole process group) is killed at
// timeout, and the error then wraps ErrTimeout.
func (hst *Host) Exec(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + hst.NetnsPath(), "--", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		return string(out), fmt.Errorf("%w: %s on host %d after %v: %v", ErrTimeout, name, hst.index, timeout, err)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s on host %d: %w", name, hst.index, err)
	}
	return string(out), nil
}

// Dial opens a connection from inside the host's network namespace, for
// test code that must talk to a process on the hosts (the root namespace
// cannot reach them). address must be a literal IP and port, so that no
// resolver or parallel dial runs in another thread outside the namespace.
// The connection keeps working from any goroutine and obeys partitions.
func (hst *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("netharness: Dial %q: need a literal IP:port: %w", address, err)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends up in the host's namespace, so the
		// runtime must retire it when this goroutine exits, not reuse it.
		runtime.LockOSThread()
		c, err := func() (net.Conn, error) {
			f, err := os.Open(hst.NetnsPath())
			if err != nil {
				return nil, err
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				return nil, fmt.Errorf("setns %s: %w", hst.name, err)
			}
			// A socket belongs to the namespace it was created in; with one
			// literal address the dialer creates it on this thread.
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		}()
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("netharness: dial %s from host %d: %w", address, hst.index, r.err)
	}
	return r.c, nil
}
