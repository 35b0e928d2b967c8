package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ownerFile records, in a node's network state directory, which bridge
// and nftables table the node made and in which network namespace, so
// that what a killed node left can be removed (RemoveLeftovers).
const ownerFile = "owner"

func netnsID() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func writeOwner(stateDir, bridge string) error {
	id, err := netnsID()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	b := fmt.Sprintf("bridge=%s\nnetns=%d\n", bridge, id)
	if err := os.WriteFile(filepath.Join(stateDir, ownerFile), []byte(b), 0o600); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// RemoveLeftovers removes the bridge and nftables table that the node
// whose state directory is stateDir made, when they are in the calling
// thread's network namespace (a node in another namespace goes with it),
// after its process died without removing them, and its overlay networks'
// namespaces (with their bridges and VXLAN devices). Container namespaces
// and veths go when their mounts and processes do. It is for test and
// operator cleanup; a missing stateDir is no error.
func RemoveLeftovers(stateDir string) error {
	// Overlay networks' namespaces are the node's alone, wherever it ran.
	if err := removeOverlayLeftovers(filepath.Join(stateDir, "overlay")); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(stateDir, ownerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	var bridge, ns string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "bridge":
			bridge = v
		case "netns":
			ns = v
		}
	}
	id, err := netnsID()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if bridge == "" || ns != fmt.Sprint(id) {
		return nil
	}
	var errs []error
	if l, err := netlink.LinkByName(bridge); err == nil {
		if _, ok := l.(*netlink.Bridge); ok {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("network: deleting bridge %s: %w", bridge, err))
			}
		}
	}
	if c, err := nftables.New(); err == nil {
		if tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4); err == nil {
			for _, t := range tables {
				if t.Name == bridge {
					errs = append(errs, deleteTable(c, bridge))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(filepath.Join(stateDir, ownerFile))
}
