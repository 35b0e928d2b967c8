//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// taskSamples scrapes url and returns the value of metric for each task
// label, parsing the text exposition format line by line.
func taskSamples(url, metric string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, metric+"{"), "} ")
		if !ok {
			return nil, fmt.Errorf("malformed sample %q", line)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", line, err)
		}
		for _, l := range strings.Split(labels, ",") {
			if k, tv, _ := strings.Cut(l, "="); k == "task" {
				out[strings.Trim(tv, `"`)] = v
			}
		}
	}
	return out, sc.Err()
}

// TestManagerWorkerServesTaskMetrics: a manager started with --worker and
// --metrics-addr serves its tasks' usage next to its own metrics: memory
// and limit of each running task, and CPU time that grows as the
// container works.
func TestManagerWorkerServesTaskMetrics(t *testing.T) {
	c := NewCluster(t)
	addr := "127.0.0.1:" + strconv.Itoa(c.freePorts("127.0.0.1", 1)[0])
	c.StartManager("m1", ManagerOptions{Worker: true, Args: []string{"--metrics-addr", addr}})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "2", "--limit-memory", "64M", "hello:latest")
	tasks := c.WaitRunning("web", 2, 30*time.Second)
	url := "http://" + addr + "/metrics"

	var cpu0 map[string]float64
	c.Eventually(15*time.Second, "memory, limit and CPU of both tasks", func() (bool, string) {
		mem, err := taskSamples(url, "minke_task_memory_bytes")
		if err != nil {
			return false, err.Error()
		}
		limit, err := taskSamples(url, "minke_task_memory_limit_bytes")
		if err != nil {
			return false, err.Error()
		}
		if cpu0, err = taskSamples(url, "minke_task_cpu_seconds_total"); err != nil {
			return false, err.Error()
		}
		for _, task := range tasks {
			id := task.GetMeta().GetId()
			if mem[id] <= 0 || limit[id] != 64<<20 || cpu0[id] <= 0 {
				return false, fmt.Sprintf("task %s: memory %v, limit %v, cpu %v", id, mem[id], limit[id], cpu0[id])
			}
		}
		return true, ""
	})
	// hello prints a line every second: its CPU time grows.
	c.Eventually(15*time.Second, "CPU seconds growing", func() (bool, string) {
		cpu, err := taskSamples(url, "minke_task_cpu_seconds_total")
		if err != nil {
			return false, err.Error()
		}
		for _, task := range tasks {
			id := task.GetMeta().GetId()
			if cpu[id] <= cpu0[id] {
				return false, fmt.Sprintf("task %s: %v then %v", id, cpu0[id], cpu[id])
			}
		}
		return true, ""
	})
}
