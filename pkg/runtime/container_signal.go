package runtime

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseSignal reads a signal as docker's STOPSIGNAL and --stop-signal do:
// a name with or without "SIG" ("SIGTERM", "term"), "RTMIN+N", or a
// number.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > sigMax {
			return 0, fmt.Errorf("signal %q: want 1-%d", s, sigMax)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && sigRTMin+n <= sigMax {
			return syscall.Signal(sigRTMin + n), nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMAX-"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && sigMax-n >= sigRTMin {
			return syscall.Signal(sigMax - n), nil
		}
	}
	switch name {
	case "SIGRTMIN":
		return syscall.Signal(sigRTMin), nil
	case "SIGRTMAX":
		return syscall.Signal(sigMax), nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown name", s)
}

// Linux's real-time signal range as the C library exposes it (glibc keeps
// 32 and 33 for itself).
const (
	sigRTMin = 34
	sigMax   = 64
)

// stopSignal is the signal Stop sends first: the spec's, else the image's,
// else SIGTERM.
func stopSignal(spec, image string) (syscall.Signal, error) {
	for _, s := range []string{spec, image} {
		if s != "" {
			return ParseSignal(s)
		}
	}
	return syscall.SIGTERM, nil
}
