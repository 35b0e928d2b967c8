package netharness

import "fmt"

// Isolate cuts host i off from every other host, in both directions. The
// other hosts still reach each other. Heal undoes it.
func (h *Harness) Isolate(i int) {
	h.t.Helper()
	rest := make([]int, 0, len(h.hosts)-1)
	for j := range h.hosts {
		if j != i {
			rest = append(rest, j)
		}
	}
	h.Partition([]int{i}, rest)
}

// Partition splits the hosts into groups that can talk within a group but
// not across groups, in both directions and for every protocol: packets are
// dropped silently, so established TCP connections stall and new ones time
// out. A host may appear in at most one group; hosts in no group are cut off
// from everyone. Each call replaces the previous partition (it is not
// cumulative). It fails the test on a bad index.
//
// Each group gets its own bridge (the first group keeps the main one) and
// the hosts' root-side veth ends move onto it; nothing changes inside the
// hosts, so addresses, routes and ARP caches stay as they were. Cutting is
// immediate; after Heal (or a change of groups) a pair that tried to talk
// while cut off may need up to about a second for ARP to re-probe, plus TCP's
// own retransmission backoff, as on a real network: tests should wait for
// reachability with a bound, not expect it on the first packet.
func (h *Harness) Partition(groups ...[]int) {
	h.t.Helper()
	target := make([]string, len(h.hosts))
	for g, group := range groups {
		for _, i := range group {
			if i < 0 || i >= len(h.hosts) {
				h.t.Fatalf("netharness: Partition: host %d out of range 0..%d", i, len(h.hosts)-1)
			}
			if target[i] != "" {
				h.t.Fatalf("netharness: Partition: host %d is in more than one group", i)
			}
			target[i] = h.groupBridge(g)
		}
	}
	next := len(groups)
	for i := range target {
		if target[i] == "" {
			target[i] = h.groupBridge(next)
			next++
		}
	}
	if err := h.apply(target); err != nil {
		h.t.Fatalf("netharness: Partition: %v", err)
	}
}

// Heal restores full connectivity between all hosts.
func (h *Harness) Heal() {
	h.t.Helper()
	target := make([]string, len(h.hosts))
	for i := range target {
		target[i] = h.bridge
	}
	if err := h.apply(target); err != nil {
		h.t.Fatalf("netharness: Heal: %v", err)
	}
}

// groupBridge names group g's bridge; g < maxHosts keeps it within IFNAMSIZ.
func (h *Harness) groupBridge(g int) string {
	if g == 0 {
		return h.bridge
	}
	return fmt.Sprintf("%sg%d", h.bridge, g)
}

// apply moves host i's veth to bridge target[i], creating bridges as needed
// and deleting partition bridges left empty.
func (h *Harness) apply(target []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("harness is closed")
	}
	needed := map[string]bool{}
	for _, b := range target {
		needed[b] = true
		if b != h.bridge && !h.bridges[b] {
			// Record first, so Close removes even a half-made bridge.
			h.bridges[b] = true
			if err := h.addBridge(b); err != nil {
				return err
			}
		}
	}
	for i, hst := range h.hosts {
		if hst.master == target[i] {
			continue
		}
		if _, err := ipCmd("link", "set", hst.veth, "master", target[i]); err != nil {
			return err
		}
		hst.master = target[i]
	}
	for b := range h.bridges {
		if !needed[b] {
			if _, err := ipCmd("link", "del", b); err != nil {
				return err
			}
			delete(h.bridges, b)
		}
	}
	return nil
}
