package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// execError is a failure to find or run the command, with docker's exit
// codes (127 not found, 126 not executable).
type execError struct {
	msg  string
	code int
}

func (e *execError) Error() string { return e.msg }

func runInit() error {
	cfgPipe := os.NewFile(initConfigFD, "init-config")
	b, err := io.ReadAll(cfgPipe)
	cfgPipe.Close()
	if err != nil {
		return fmt.Errorf("reading init config: %w", err)
	}
	cfg, err := decodeInitConfig(b)
	if err != nil {
		return err
	}
	unix.CloseOnExec(initErrorFD)
	scope := thisThread
	if cfg.Init {
		// The init stays as the reaper: confine all its threads.
		if err := checkAllThreads(); err != nil {
			return err
		}
		scope = allThreads
	}
	if cfg.NetNS != "" {
		if err := joinNetns(cfg.NetNS); err != nil {
			return err
		}
	}

	// This process was born in the container's cgroup (StartInCgroup), so
	// the new cgroup namespace is rooted there and the container sees "/"
	// as its cgroup.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("creating cgroup namespace: %w", err)
	}
	if err := setupRootfs(cfg.Rootfs); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	sb := cfg.Sandbox
	if err := mountAll(cfg.Rootfs, sb.Mounts); err != nil {
		return err
	}
	if err := pivotRoot(cfg.Rootfs); err != nil {
		return err
	}
	p := cfg.Process
	cred, home, err := resolveUser(p.User, sb.Groups)
	if err != nil {
		return err
	}
	env := p.Env
	if !HasKey(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	if err := os.MkdirAll(p.Cwd, 0o755); err != nil {
		return fmt.Errorf("creating working directory %q: %w", p.Cwd, err)
	}
	if err := os.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("changing to working directory %q: %w", p.Cwd, err)
	}
	if sb.ReadonlyRootfs {
		if err := remountRootReadonly(); err != nil {
			return err
		}
	}
	path, err := lookPath(p.Args[0], envValue(env, "PATH"))
	if err != nil {
		return err
	}
	if err := confineProcess(cred, cfg.Caps, sb.Rlimits, sb.Seccomp, scope); err != nil {
		return err
	}
	if cfg.Init {
		return runReaper(path, p.Args, env)
	}
	err = unix.Exec(path, p.Args, env)
	code := 126
	if errors.Is(err, unix.ENOENT) {
		code = 127
	}
	return &execError{msg: fmt.Sprintf("exec %q: %v", path, err), code: code}
}

// confineProcess is the last step before a process of the container execs
// (its command, or one run inside it such as a healthcheck): rlimits, the
// capability bounding set, user and groups, the remaining capabilities,
// no_new_privs and then the seccomp filter (nil: unconfined).
//
// Order matters: the bounding set is dropped while the process still has
// CAP_SETPCAP; the set*id calls need CAP_SETUID/CAP_SETGID, which the
// container may not get; a uid other than 0 loses its permitted and
// effective capabilities at setuid (no PR_SET_KEEPCAPS), as in docker. The
// capability and set*id calls act on this (locked) thread only, which is
// the one that execs (the others vanish at exec).
// The filter comes last: from then on only what docker's profile allows
// works, which includes execve and what the Go runtime needs until then.
// With allThreads (the --init reaper, which never execs) every call acts on
// every thread of the process.
func confineProcess(cred credential, capSet uint64, rlimits []Rlimit, seccomp []byte, scope threadScope) error {
	if err := applyRlimits(rlimits); err != nil {
		return err
	}
	if err := dropBoundingSet(capSet, scope); err != nil {
		return err
	}
	if err := scope.setIDs(cred); err != nil {
		return err
	}
	if cred.uid != 0 {
		capSet = 0
	}
	if err := setCapabilities(capSet, scope); err != nil {
		return err
	}
	if err := setNoNewPrivs(scope); err != nil {
		return err
	}
	if seccomp != nil {
		return loadSeccomp(seccomp, scope)
	}
	return nil
}

// setupRootfs mounts the container's /proc, /sys and /dev inside rootfs,
// in the init's own (new) mount namespace, and masks or write-protects the
// kernel files a container must not read or write.
func setupRootfs(rootfs string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding rootfs: %w", err)
	}
	const (
		nodev  = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
		devOpt = "mode=755,size=65536k"
	)
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "proc", "proc", nodev, ""},
		{"sysfs", "sys", "sysfs", nodev | unix.MS_RDONLY, ""},
		// nodev: a node the container mknods in /dev is unusable; the usual
		// devices are bind mounts of the host's, which keep their own flags.
		{"tmpfs", "dev", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME, devOpt},
		{"devpts", "dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
		{"shm", "dev/shm", "tmpfs", nodev, "mode=1777,size=65536k"},
		{"mqueue", "dev/mqueue", "mqueue", nodev, ""},
	}
	for _, m := range mounts {
		dst, err := mountPoint(rootfs, m.dst)
		if err != nil {
			return err
		}
		if err := unix.Mount(m.src, dst, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on /%s: %w", m.fstype, m.dst, err)
		}
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		src := "/dev/" + name
		if _, err := os.Stat(src); err != nil {
			continue // the host lacks it (minimal build machines)
		}
		dst := filepath.Join(rootfs, "dev", name)
		if err := touch(dst, unix.O_EXCL|unix.O_WRONLY, 0o666); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", name, err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding /dev/%s: %w", name, err)
		}
	}
	if err := maskPaths(rootfs); err != nil {
		return err
	}
	if err := readonlyBinds(rootfs); err != nil {
		return err
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"},
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(rootfs, "dev", l[1])); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// mountPoint creates rootfs/rel as a directory, refusing a symlink (an
// image could otherwise point a mount outside its root).
func mountPoint(rootfs, rel string) (string, error) {
	p := filepath.Join(rootfs, rel)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", fmt.Errorf("creating /%s: %w", rel, err)
		}
	case err != nil:
		return "", fmt.Errorf("/%s: %w", rel, err)
	case !fi.IsDir():
		return "", fmt.Errorf("/%s in the image is not a directory", rel)
	}
	return p, nil
}

// pivotRoot makes rootfs the root and detaches the old one, so that no
// host path stays reachable.
func pivotRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching old root: %w", err)
	}
	return unix.Chdir("/")
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// lookPath finds file in the container's PATH, like exec.LookPath but with
// the container's environment rather than the init's.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", err
		}
		return file, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", &execError{msg: fmt.Sprintf("executable %q not found in $PATH", file), code: 127}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return &execError{msg: fmt.Sprintf("executable %q not found", p), code: 127}
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return &execError{msg: fmt.Sprintf("%q is not executable", p), code: 126}
	}
	return nil
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v
		}
	}
	return ""
}

// joinNetns moves this (locked) thread, which is the one that execs, into
// the network namespace at path.
func joinNetns(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("joining network namespace %s: %w", path, err)
	}
	return nil
}
