package scheduler

import (
	"errors"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestParseConstraint(t *testing.T) {
	const want = "want KEY==VALUE or KEY!=VALUE with KEY one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>"
	tests := []struct {
		in   string
		want string // canonical form, or the error
		err  bool
	}{
		{in: "node.id==abc", want: "node.id==abc"},
		{in: "node.hostname!=web-1", want: "node.hostname!=web-1"},
		{in: "node.role==manager", want: "node.role==manager"},
		{in: "node.role == Worker", want: "node.role==Worker"},
		{in: "node.platform.os==linux", want: "node.platform.os==linux"},
		{in: "node.platform.arch==amd64", want: "node.platform.arch==amd64"},
		{in: "node.platform.arch==x86_64", want: "node.platform.arch==amd64"},
		{in: "node.platform.arch!=aarch64", want: "node.platform.arch!=arm64"},
		{in: "node.labels.zone==a", want: "node.labels.zone==a"},
		{in: "  node.labels.zone  !=  eu-west-1  ", want: "node.labels.zone!=eu-west-1"},
		{in: "Node.Labels.Zone==a", want: "node.labels.Zone==a"},
		{in: "NODE.ID==x", want: "node.id==x"},
		{in: "node.labels.com.example.tier==db", want: "node.labels.com.example.tier==db"},

		{in: "node.labels.zone=a", err: true, want: `invalid constraint "node.labels.zone=a": ` + want},
		{in: "node.labels.zone", err: true, want: `invalid constraint "node.labels.zone": ` + want},
		{in: "", err: true, want: `invalid constraint "": ` + want},
		{in: "node.zone==a", err: true, want: `invalid constraint "node.zone==a": unknown key "node.zone", want one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>`},
		{in: "engine.labels.x==a", err: true, want: `invalid constraint "engine.labels.x==a": unknown key "engine.labels.x", want one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>`},
		{in: "node.labels.==a", err: true, want: `invalid constraint "node.labels.==a": unknown key "node.labels.", want one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>`},
		{in: "==a", err: true, want: `invalid constraint "==a": unknown key "", want one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>`},
		{in: "node.id==", err: true, want: `invalid constraint "node.id==": empty value after ==`},
		{in: "node.id!=  ", err: true, want: `invalid constraint "node.id!=  ": empty value after !=`},
		{in: "node.labels.a==b==c", err: true, want: `invalid constraint "node.labels.a==b==c": value "b==c" must not contain =, !, < or >`},
		{in: "node.labels.a!=b==c", err: true, want: `invalid constraint "node.labels.a!=b==c": value "b==c" must not contain =, !, < or >`},
		{in: "node.labels.my zone==a", err: true, want: `invalid constraint "node.labels.my zone==a": label name "my zone" must not contain spaces, = or !`},
		{in: "node.role==boss", err: true, want: `invalid constraint "node.role==boss": node.role must be manager or worker, not "boss"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := ParseConstraint(tt.in)
			if tt.err {
				if err == nil || err.Error() != tt.want || !errors.Is(err, ErrInvalidConstraint) {
					t.Fatalf("ParseConstraint(%q) = %v, %v; want error %q", tt.in, c, err, tt.want)
				}
				return
			}
			if err != nil || c.String() != tt.want {
				t.Fatalf("ParseConstraint(%q) = %v, %v; want %s", tt.in, c, err, tt.want)
			}
			again, err := ParseConstraint(c.String())
			if err != nil || again != c {
				t.Fatalf("String does not round-trip: %q -> %v, %v", c.String(), again, err)
			}
		})
	}
}

func TestParsePreference(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "spread=node.labels.zone", want: "spread=node.labels.zone"},
		{in: " Spread = Node.Labels.Zone ", want: "spread=node.labels.Zone"},
		{in: "spread=node.labels.a.b", want: "spread=node.labels.a.b"},
		{in: "binpack=node.labels.zone", err: true, want: `invalid placement preference "binpack=node.labels.zone": unknown strategy "binpack", only spread is supported (spread=node.labels.<name>)`},
		{in: "spread", err: true, want: `invalid placement preference "spread": want spread=node.labels.<name>`},
		{in: "spread=node.labels.", err: true, want: `invalid placement preference "spread=node.labels.": want spread=node.labels.<name>`},
		{in: "spread=node.hostname", err: true, want: `invalid placement preference "spread=node.hostname": want spread=node.labels.<name>`},
		{in: "", err: true, want: `invalid placement preference "": want spread=node.labels.<name>`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePreference(tt.in)
			if tt.err {
				if err == nil || err.Error() != tt.want || !errors.Is(err, ErrInvalidPreference) {
					t.Fatalf("ParsePreference(%q) = %v, %v; want error %q", tt.in, p, err, tt.want)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("ParsePreference(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
			}
		})
	}
}

func TestConstraintMatches(t *testing.T) {
	n := node("Node-1", cpu, gib)
	n.Role = minkepb.NodeRole_MANAGER
	n.Description.Hostname = "Web-1"
	n.Description.Platform = &minkepb.Platform{Os: "linux", Architecture: "x86_64"}
	n.Spec.Labels = map[string]string{"zone": "EU-1", "Tier": "db"}
	bare := &minkepb.Node{Meta: &minkepb.Meta{Id: "bare"}}

	tests := []struct {
		c          string
		node, bare bool
	}{
		{c: "node.id==node-1", node: true},
		{c: "node.id!=node-1", bare: true},
		{c: "node.id==node", bare: false}, // whole IDs only, no prefixes
		{c: "node.hostname==WEB-1", node: true},
		{c: "node.hostname!=web-2", node: true, bare: true},
		{c: "node.role==manager", node: true},
		{c: "node.role==worker", bare: true},
		{c: "node.role!=worker", node: true},
		{c: "node.platform.os==Linux", node: true},
		{c: "node.platform.os!=windows", node: true, bare: true},
		{c: "node.platform.arch==amd64", node: true},
		{c: "node.platform.arch==x86_64", node: true},
		{c: "node.platform.arch==arm64"},
		{c: "node.labels.zone==eu-1", node: true}, // values are case-insensitive, as in swarm
		{c: "node.labels.zone!=eu-1", bare: true}, // a missing label matches !=
		{c: "node.labels.Zone==eu-1"},             // label names are case-sensitive
		{c: "node.labels.Zone!=eu-1", node: true, bare: true},
		{c: "node.labels.tier==db"},
		{c: "node.labels.Tier==DB", node: true},
	}
	for _, tt := range tests {
		t.Run(tt.c, func(t *testing.T) {
			c := mustConstraint(tt.c)
			if got := c.Matches(n); got != tt.node {
				t.Errorf("Matches(node) = %v, want %v", got, tt.node)
			}
			if got := c.Matches(bare); got != tt.bare {
				t.Errorf("Matches(bare node) = %v, want %v", got, tt.bare)
			}
		})
	}
	if (Constraint{}).Matches(n) {
		t.Errorf("the zero Constraint matches a node")
	}
}
