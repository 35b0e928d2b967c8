package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/testimage"
)

// benchContainers is how many containers one run of the benchmark starts.
const benchContainers = 100

// BenchmarkContainerLifecycle measures create → start → exit → remove of
// 100 containers of a true-like image (a static binary that exits 0), one
// after another, and the same with runc on the same unpacked rootfs when
// runc is installed, and prints median and p99 side by side; for minke
// also the median of each phase (create, start, exit, remove, and inside
// start: see startPhaseNames), and for both the CPU time per container,
// which, unlike wall time, barely depends on what else the machine runs.
//
//	make bench-runtime
func BenchmarkContainerLifecycle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	img, err := testimage.Build(ctx, "testdata/true")
	if err != nil {
		b.Fatal(err)
	}
	ref := testimage.Serve(b, img, "true:latest")
	// As a worker runs it: with the small helper binary next to it.
	helper := staticHelper(b)
	r, err := New(Config{Root: b.TempDir(), CgroupParent: fmt.Sprintf("minke-bench-%d", os.Getpid()), HelperBinary: helper})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = r.Sweep(context.Background())
		removeCgroupParent(r)
	})
	pulled, err := r.Pull(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	var phases [4][]time.Duration     // create, start, wait, remove
	var startParts [6][]time.Duration // of start: see startPhases.Durations
	lifecycle := func(id string) error {
		t0 := time.Now()
		c, err := r.Create(ctx, ContainerSpec{ID: id, Image: ref})
		if err != nil {
			return err
		}
		t1 := time.Now()
		if err := c.Start(ctx); err != nil {
			return err
		}
		t2 := time.Now()
		for i, d := range c.startPhases.Durations() {
			startParts[i] = append(startParts[i], d)
		}
		st, err := c.Wait(ctx)
		if err != nil {
			return err
		}
		if st.ExitCode != 0 {
			return fmt.Errorf("exit %+v", st)
		}
		t3 := time.Now()
		err = c.Remove(ctx)
		t4 := time.Now()
		for i, d := range []time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)} {
			phases[i] = append(phases[i], d)
		}
		return err
	}
	if err := lifecycle("warmup"); err != nil {
		b.Fatal(err)
	}

	phases = [4][]time.Duration{}
	startParts = [6][]time.Duration{}
	b.ResetTimer()
	var ours []time.Duration
	cpu0 := cpuTimes()
	for range b.N {
		ours = ours[:0]
		for i := range benchContainers {
			start := time.Now()
			if err := lifecycle("bench-" + strconv.Itoa(i)); err != nil {
				b.Fatal(err)
			}
			ours = append(ours, time.Since(start))
		}
	}
	b.StopTimer()
	ourCPU := cpuTimes().sub(cpu0).per(b.N * benchContainers)
	om, op := medianP99(ours)
	b.ReportMetric(ms(om), "ms/container(median)")
	b.ReportMetric(ms(op), "ms/container(p99)")

	runc, err := exec.LookPath("runc")
	var rm, rp time.Duration
	var runcCPU cpuUse
	if err == nil {
		rootfs := r.layerDir(digestHex(pulled.Layers[0]))
		cpu0 := cpuTimes()
		times, err := runcLifecycle(b, runc, rootfs)
		runcCPU = cpuTimes().sub(cpu0).per(benchContainers + 1) // and its warm-up
		if err != nil {
			b.Fatalf("runc: %v", err)
		}
		rm, rp = medianP99(times)
		b.ReportMetric(ms(rm), "ms/runc-container(median)")
	}
	fmt.Printf("\ncreate→start→exit→remove, %d containers of a true-like image, one at a time:\n", benchContainers)
	fmt.Printf("  %-8s median %7.2f ms   p99 %7.2f ms   (target: median <= 15 ms)\n", "minke", ms(om), ms(op))
	var parts []string
	for i, name := range []string{"create", "start", "exit", "remove"} {
		m, _ := medianP99(phases[i])
		parts = append(parts, fmt.Sprintf("%s %.2f", name, ms(m)))
	}
	fmt.Printf("  minke CPU per container: %s\n", ourCPU)
	fmt.Printf("  minke phases (median ms): %s\n", strings.Join(parts, ", "))
	parts = parts[:0]
	for i, name := range startPhaseNames {
		m, _ := medianP99(startParts[i])
		parts = append(parts, fmt.Sprintf("%s %.2f", name, ms(m)))
	}
	fmt.Printf("  start phases (median ms): %s\n", strings.Join(parts, ", "))
	if runc == "" {
		fmt.Println("  runc: not installed")
	} else {
		fmt.Printf("  %-8s median %7.2f ms   p99 %7.2f ms\n", "runc", ms(rm), ms(rp))
		fmt.Printf("  runc CPU per container: %s\n", runcCPU)
		fmt.Printf("  minke/runc: median %.2f, p99 %.2f (target: median <= 0.5)\n", float64(om)/float64(rm), float64(op)/float64(rp))
	}
}

// runcLifecycle runs `runc run` (create, start, wait, delete) of /true on
// rootfs (read-only, shared) benchContainers times.
func runcLifecycle(b *testing.B, runc, rootfs string) ([]time.Duration, error) {
	bundle := b.TempDir()
	spec := exec.Command(runc, "spec", "--bundle", bundle)
	if out, err := spec.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("runc spec: %v: %s", err, out)
	}
	cfgPath := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	cfg["root"] = map[string]any{"path": rootfs, "readonly": true}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{testimage.BinaryPath}
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		return nil, err
	}
	root := b.TempDir() // runc's state directory
	run := func(id string) error {
		cmd := exec.Command(runc, "--root", root, "run", "--bundle", bundle, id)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("runc run: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("runc-warmup"); err != nil {
		return nil, err
	}
	var times []time.Duration
	for i := range benchContainers {
		start := time.Now()
		if err := run("runc-" + strconv.Itoa(i)); err != nil {
			return nil, err
		}
		times = append(times, time.Since(start))
	}
	return times, nil
}

func medianP99(d []time.Duration) (median, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	median = s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + median) / 2
	}
	idx := (len(s)*99+99)/100 - 1 // nearest rank
	return median, s[min(idx, len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuUse is CPU time of this process (the runtime's side) and of its
// reaped children (shims with their inits and containers; runc with its
// init and container), which unlike wall time does not depend on what
// else the machine runs.
type cpuUse struct{ self, children time.Duration }

func cpuTimes() cpuUse {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return cpuUse{tv(self), tv(children)}
}

func (a cpuUse) sub(b cpuUse) cpuUse { return cpuUse{a.self - b.self, a.children - b.children} }

func (a cpuUse) per(n int) cpuUse {
	return cpuUse{a.self / time.Duration(n), a.children / time.Duration(n)}
}

func (a cpuUse) String() string {
	return fmt.Sprintf("%.2f ms (caller %.2f + children %.2f)", ms(a.self+a.children), ms(a.self), ms(a.children))
}
