//go:build linux

package schedbench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SCHEDBENCH_PROFILE=DIR has every process of an end-to-end run serve Go's
// profiler (MINKE_PPROF_ADDR on its own loopback address) and writes a CPU
// profile of each, taken from the first create on, to
// DIR/managers=N-<process>.cpu.pprof, and then a heap profile to
// DIR/managers=N-<process>.heap.pprof. SCHEDBENCH_PROFILE_SECONDS sets the
// CPU profile's length (default 20). Read one with
// `go tool pprof -top bin/manager FILE`.
var profileDir = os.Getenv("SCHEDBENCH_PROFILE")

// profileSeconds is the length of each CPU profile.
func profileSeconds() int {
	if n, err := strconv.Atoi(os.Getenv("SCHEDBENCH_PROFILE_SECONDS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// startProfiles starts one CPU profile per process that serves the
// profiler; the returned function waits for them and reports each file or
// error.
func (c *cluster) startProfiles(procs []*proc) (wait func()) {
	if profileDir == "" {
		return func() {}
	}
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		c.tb.Fatalf("SCHEDBENCH_PROFILE: %v", err)
	}
	secs := profileSeconds()
	var wg sync.WaitGroup
	msgs := make([]string, len(procs))
	for i, p := range procs {
		if p.pprof == "" {
			continue
		}
		path := filepath.Join(profileDir, fmt.Sprintf("managers=%d-%s.cpu.pprof", len(c.mgrs), p.name))
		wg.Go(func() {
			if err := fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, secs), secs, path); err != nil {
				msgs[i] = fmt.Sprintf("%s: CPU profile: %v", p.name, err)
				return
			}
			heap := strings.Replace(path, ".cpu.", ".heap.", 1)
			if err := fetchProfile(fmt.Sprintf("http://%s/debug/pprof/heap", p.pprof), 0, heap); err != nil {
				msgs[i] = fmt.Sprintf("%s: heap profile: %v", p.name, err)
				return
			}
			msgs[i] = fmt.Sprintf("%s: %ds CPU profile in %s, heap profile after it in %s", p.name, secs, path, heap)
		})
	}
	return func() {
		wg.Wait()
		for _, m := range msgs {
			if m != "" {
				c.tb.Log(m)
			}
		}
	}
}

// fetchProfile writes the profile at url, which takes secs seconds to
// make, to path.
func fetchProfile(url string, secs int, path string) error {
	cl := &http.Client{Timeout: time.Duration(secs)*time.Second + callTimeout}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
