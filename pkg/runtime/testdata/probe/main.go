// Command probe reports, as key=value lines on stdout, what a container can
// see and do; the runtime's isolation tests run it as a container and check
// each line. Operations print "ok" or the errno name, such as "EPERM".
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "oom":
			oom()
		case "spin":
			spin(os.Args[2])
		case "fork":
			forkMany(os.Args[2])
		case "pause":
			time.Sleep(time.Hour)
		case "alloc-on-usr1":
			allocOnUSR1(os.Args[2])
		case "sandbox":
			sandbox()
		default:
			fmt.Printf("unknown mode %q\n", os.Args[1])
			os.Exit(2)
		}
		return
	}
	status := readStatus()
	for _, k := range []string{"Uid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
		fmt.Printf("%s=%s\n", strings.ToLower(k), status[k])
	}
	fmt.Printf("write_core_pattern=%s\n", result(os.WriteFile("/proc/sys/kernel/core_pattern", []byte("|/tmp/evil"), 0)))
	fmt.Printf("mount_tmpfs=%s\n", result(syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, "")))
	// b 8:0 is the first SCSI/SATA disk. Docker lets a container create any
	// node ("b *:* m") but not open it.
	node := "/tmp/sda"
	fmt.Printf("mknod_block=%s\n", result(syscall.Mknod(node, syscall.S_IFBLK|0o600, 8<<8|0)))
	f, err := os.Open(node)
	if err == nil {
		f.Close()
	}
	fmt.Printf("open_block=%s\n", result(err))
	fmt.Printf("kcore_bytes=%d\n", readLen("/proc/kcore"))
	fmt.Printf("timer_list_bytes=%d\n", readLen("/proc/timer_list"))
	fmt.Printf("keys_bytes=%d\n", readLen("/proc/keys"))
	ents, _ := os.ReadDir("/sys/firmware")
	fmt.Printf("sys_firmware_entries=%d\n", len(ents))
	pids, _ := filepath.Glob("/proc/[0-9]*")
	fmt.Printf("pids=%d\n", len(pids))
	cg, _ := os.ReadFile("/proc/self/cgroup")
	fmt.Printf("cgroup=%s\n", strings.Join(strings.Fields(string(cg)), " "))
	syscalls()
}

func readStatus() map[string]string {
	m := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[k] = strings.Join(strings.Fields(v), ",")
		}
	}
	return m
}

// readLen reads at most 4 KiB of path and returns how many bytes it got, or
// -1 if it could not be read.
func readLen(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	n, err := io.ReadFull(f, make([]byte, 4096))
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return -1
	}
	return n
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := errnoName[errno]; name != "" {
			return name
		}
		return fmt.Sprintf("errno%d", int(errno))
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

var errnoName = map[syscall.Errno]string{
	syscall.EPERM:  "EPERM",
	syscall.EACCES: "EACCES",
	syscall.EROFS:  "EROFS",
	syscall.ENOENT: "ENOENT",
	syscall.EEXIST: "EEXIST",
	syscall.EINVAL: "EINVAL",
	syscall.ENXIO:  "ENXIO",
	syscall.ENOSYS: "ENOSYS",
	syscall.EAGAIN: "EAGAIN",
	syscall.EBADF:  "EBADF",
	syscall.ENOKEY: "ENOKEY",
	syscall.EFAULT: "EFAULT",
}

// allocOnUSR1 prints "waiting", and on SIGUSR1 allocates and touches mib
// MiB, prints "allocated=MIB" and holds the memory until killed: a test
// reads the container's usage before and after.
func allocOnUSR1(mib string) {
	var n int
	if _, err := fmt.Sscan(mib, &n); err != nil || n <= 0 {
		fmt.Printf("bad size %q\n", mib)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	fmt.Println("waiting")
	<-sig
	buf := make([]byte, n<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	fmt.Printf("allocated=%d\n", n)
	time.Sleep(time.Hour)
	fmt.Println(buf[len(buf)-1]) // keep buf live
}
