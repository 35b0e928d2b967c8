package scheduler

import (
	"math/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// explanationRE splits "no suitable node (N nodes: PARTS)"; each part of
// PARTS starts with the number of nodes it counts.
var (
	explanationRE = regexp.MustCompile(`^no suitable node \((\d+) nodes?: (.+)\)$`)
	partCountRE   = regexp.MustCompile(`(?:^|; |, )(\d+) `)
)

// TestExplanationProperty: every unplaced task's explanation counts every
// node exactly once (the counts add up to the node count), and it names a
// reason only when the cluster has nodes.
func TestExplanationProperty(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	checked := 0
	for iter := range 100 {
		nodes, pending := randomCluster(r)
		rules := randomRules(r, 5)
		plan := ScheduleWith(nodes, pending, rules.placement)
		for id, why := range plan.Unplaced {
			if len(nodes) == 0 {
				if why != "no suitable node (0 nodes in the cluster)" {
					t.Fatalf("iter %d: %s: %q with no nodes", iter, id, why)
				}
				continue
			}
			m := explanationRE.FindStringSubmatch(why)
			if m == nil {
				t.Fatalf("iter %d: %s: explanation %q has not the documented form", iter, id, why)
			}
			total, _ := strconv.Atoi(m[1])
			if total != len(nodes) {
				t.Fatalf("iter %d: %s: %q counts %d nodes, the cluster has %d", iter, id, why, total, len(nodes))
			}
			sum := 0
			// Labels inside a part (e.g. "(2)" after max replicas) are not
			// counts: only numbers that start a part are.
			for _, c := range partCountRE.FindAllStringSubmatch(stripParens(m[2]), -1) {
				n, _ := strconv.Atoi(c[1])
				sum += n
			}
			if sum != total {
				t.Fatalf("iter %d: %s: %q: parts count %d nodes, want %d", iter, id, why, sum, total)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Fatalf("only %d explanations checked: the random clusters rarely leave tasks unplaced", checked)
	}
}

// stripParens drops parenthesised text, e.g. "(2)" in "at max replicas per
// node (2)", and the amounts after a colon ("insufficient cpu: 1 CPU
// reserved by task, at most 0.5 free"), which are not node counts.
func stripParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	parts := strings.Split(b.String(), "; ")
	for i, p := range parts {
		// "N insufficient memory: X reserved by task, at most Y free"
		if j := strings.Index(p, ": "); j >= 0 && strings.Contains(p[:j], "insufficient") {
			parts[i] = p[:j]
		}
	}
	return strings.Join(parts, "; ")
}
