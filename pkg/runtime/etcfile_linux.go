package runtime

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteEtcFile writes /etc/<name> (hosts, resolv.conf, hostname) in a
// created container's root before it starts, replacing the image's file.
// The path is resolved inside the root, so an image whose /etc or file is a
// symlink cannot make the write land outside it.
//
// hosts, hostname and resolv.conf are the runtime's own files, which the
// init binds over the image's (mounts_etc.go); for them the content
// replaces the runtime's file instead, keeping what the spec asked for:
// ExtraHosts lines are appended to hosts, and a spec that sets DNSServers,
// DNSSearch or DNSOptions keeps its resolv.conf.
func (c *Container) WriteEtcFile(name string, data []byte) error {
	if name == "" || filepath.Base(name) != name || name == "." || name == ".." {
		return fmt.Errorf("%w: etc file name %q", ErrInvalidSpec, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateCreated {
		return fmt.Errorf("%w: write /etc/%s of container %s: not in the created state", ErrInvalidState, name, c.spec.ID)
	}
	if done, err := c.writeSandboxEtcFile(name, data); done || err != nil {
		return err
	}
	root, err := unix.Open(c.rootfs(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("runtime: opening root of %s: %w", c.spec.ID, err)
	}
	defer unix.Close(root)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	if err := unix.Mkdirat(root, "etc", 0o755); err != nil && err != unix.EEXIST {
		return fmt.Errorf("runtime: creating /etc in %s: %w", c.spec.ID, err)
	}
	etc, err := unix.Openat2(root, "etc", how)
	if err != nil {
		return fmt.Errorf("runtime: opening /etc of %s: %w", c.spec.ID, err)
	}
	defer unix.Close(etc)
	// A symlink or other file at the name is replaced, not followed.
	if err := unix.Unlinkat(etc, name, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("runtime: replacing /etc/%s in %s: %w", name, c.spec.ID, err)
	}
	fd, err := unix.Openat(etc, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("runtime: creating /etc/%s in %s: %w", name, c.spec.ID, err)
	}
	defer unix.Close(fd)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err != nil {
			return fmt.Errorf("runtime: writing /etc/%s in %s: %w", name, c.spec.ID, err)
		}
		data = data[n:]
	}
	return nil
}
