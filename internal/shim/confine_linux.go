package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// This file holds what the container init does to confine the container's
// process beyond namespaces, matching what `docker run` applies by default:
// masked and read-only kernel files, a reduced capability set, and
// no_new_privs. Capabilities, no_new_privs and namespaces belong to a
// thread, not a process: every call here runs on the init's locked OS
// thread, the one that later calls execve, or on every thread (see
// confine_threads_linux.go).

// maskedPaths are hidden from the container (docker's defaults): files are
// covered with /dev/null, directories with an empty read-only tmpfs. They
// leak host information (kcore, keys, timer_list) or drive hardware.
var maskedPaths = []string{
	"proc/acpi",
	"proc/asound",
	"proc/interrupts",
	"proc/kcore",
	"proc/keys",
	"proc/latency_stats",
	"proc/timer_list",
	"proc/timer_stats",
	"proc/sched_debug",
	"proc/scsi",
	"sys/firmware",
	"sys/devices/virtual/powercap",
}

// readonlyPaths are bind mounted read-only over themselves (docker's
// defaults): /proc/sys is how a root process would change host kernel
// settings such as kernel.core_pattern, which runs a host program.
var readonlyPaths = []string{
	"proc/bus",
	"proc/fs",
	"proc/irq",
	"proc/sys",
	"proc/sysrq-trigger",
}

// procFlags are the flags /proc is mounted with; a read-only bind remount
// must repeat them, since MS_REMOUNT|MS_BIND replaces the per-mount flags.
const procFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// maskPaths hides maskedPaths under rootfs. Paths the kernel does not
// provide are skipped. Must run before pivot_root: the host's /dev/null is
// bound. /proc and /sys are fresh kernel mounts at this point, so none of
// these paths can be a symlink planted by the image.
func maskPaths(rootfs string) error {
	for _, rel := range maskedPaths {
		p := filepath.Join(rootfs, rel)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("masking /%s: %w", rel, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|procFlags, "mode=0555")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking /%s: %w", rel, err)
		}
	}
	return nil
}

// readonlyBinds makes readonlyPaths under rootfs read-only. Without
// CAP_SYS_ADMIN the container cannot unmount or remount them.
func readonlyBinds(rootfs string) error {
	for _, rel := range readonlyPaths {
		p := filepath.Join(rootfs, rel)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding /%s read-only: %w", rel, err)
		}
		if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|procFlags, ""); err != nil {
			return fmt.Errorf("remounting /%s read-only: %w", rel, err)
		}
	}
	return nil
}

// dropBoundingSet removes every capability not in keep from the calling
// thread's bounding set, which caps what any later execve can grant, file
// capabilities and setuid-root binaries included. It also clears the
// ambient set. Needs CAP_SETPCAP, so it runs while the init is still root
// with all capabilities.
func dropBoundingSet(keep uint64, scope threadScope) error {
	for c := range 64 {
		if keep&(1<<c) != 0 {
			continue
		}
		err := scope.prctl(unix.PR_CAPBSET_DROP, uintptr(c))
		if errors.Is(err, unix.EINVAL) {
			break // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("dropping %s from the bounding set: %w", capName(c), err)
		}
	}
	err := scope.prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL)
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: kernel before 4.3, no ambient set
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	return nil
}

// setCapabilities sets the calling thread's effective and permitted sets to
// caps (limited to what the thread still has) and empties its inheritable
// set, as docker does since CVE-2022-24769. Call it after the set*id calls:
// they need CAP_SETUID and CAP_SETGID, which caps may lack.
func setCapabilities(caps uint64, scope threadScope) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	have := uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	want := caps & have // a capability newer than the kernel cannot be set
	lo, hi := uint32(want), uint32(want>>32)
	data = [2]unix.CapUserData{
		{Effective: lo, Permitted: lo},
		{Effective: hi, Permitted: hi},
	}
	if err := scope.capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset %#x: %w", want, err)
	}
	return nil
}

// setNoNewPrivs makes execve unable to grant privileges: setuid and setgid
// bits and file capabilities are ignored from here on, in this process and
// all its descendants.
func setNoNewPrivs(scope threadScope) error {
	if err := scope.prctl(unix.PR_SET_NO_NEW_PRIVS, 1); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return nil
}
