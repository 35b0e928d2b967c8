package scheduler

import (
	"errors"
	"fmt"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Errors returned by ParseConstraint and ParsePreference. The messages name
// the expression and say what is allowed, so callers can show them as they
// are (prefixed with the field, e.g. "constraints[1]: ...").
var (
	// ErrInvalidConstraint: a placement constraint is malformed or uses an
	// unknown key.
	ErrInvalidConstraint = errors.New("invalid constraint")
	// ErrInvalidPreference: a placement preference is not
	// spread=node.labels.<name>.
	ErrInvalidPreference = errors.New("invalid placement preference")
)

const (
	labelPrefix = "node.labels."
	allowedKeys = "node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>"
)

// constraintKey is the node attribute a constraint compares.
type constraintKey uint8

const (
	// keyInvalid is the zero Constraint's key; it matches no node.
	keyInvalid constraintKey = iota
	keyID
	keyHostname
	keyRole
	keyOS
	keyArch
	keyLabel
)

var keyNames = map[string]constraintKey{
	"node.id":            keyID,
	"node.hostname":      keyHostname,
	"node.role":          keyRole,
	"node.platform.os":   keyOS,
	"node.platform.arch": keyArch,
}

// Constraint is one parsed placement constraint, e.g. node.labels.zone==a.
// Build it with ParseConstraint; the zero Constraint matches no node.
//
// Matching follows SwarmKit's constraint package:
//   - attribute names (node.id, node.role, the node.labels. prefix) are
//     case-insensitive; a label's name after node.labels. is case-sensitive,
//     because labels are a map whose keys are case-sensitive;
//   - values compare case-insensitively for every key, label values
//     included, so a constraint written for swarm behaves the same here
//     (node.labels.zone==EU-1 matches a node labelled zone=eu-1);
//   - an absent attribute (no hostname, no platform, a missing label) reads
//     as the empty string: == never matches it (values are never empty) and
//     != always does.
//
// Beyond SwarmKit, node.platform.arch treats x86_64 as amd64 and aarch64 as
// arm64 on both sides (SwarmKit does this only in its image platform
// filter), and node.role values are checked at parse time.
type Constraint struct {
	key   constraintKey
	label string // the label name, for keyLabel
	equal bool   // == when true, != when false
	value string // as written; for keyArch normalised by normArch
}

// ParseConstraint parses a constraint in swarm syntax: KEY==VALUE or
// KEY!=VALUE, spaces allowed around the operator, with KEY one of node.id,
// node.hostname, node.role (value manager or worker), node.platform.os,
// node.platform.arch or node.labels.<name>.
func ParseConstraint(s string) (Constraint, error) {
	eq, ne := strings.Index(s, "=="), strings.Index(s, "!=")
	i, equal := eq, true
	if i < 0 || (ne >= 0 && ne < i) {
		i, equal = ne, false
	}
	if i < 0 {
		return Constraint{}, fmt.Errorf("%w %q: want KEY==VALUE or KEY!=VALUE with KEY one of %s", ErrInvalidConstraint, s, allowedKeys)
	}
	rawKey := strings.TrimSpace(s[:i])
	value := strings.TrimSpace(s[i+2:])
	c := Constraint{equal: equal, value: value}
	lower := strings.ToLower(rawKey)
	switch k, ok := keyNames[lower]; {
	case ok:
		c.key = k
	case strings.HasPrefix(lower, labelPrefix) && len(rawKey) > len(labelPrefix):
		c.key, c.label = keyLabel, rawKey[len(labelPrefix):]
		if strings.ContainsAny(c.label, " \t=!") {
			return Constraint{}, fmt.Errorf("%w %q: label name %q must not contain spaces, = or !", ErrInvalidConstraint, s, c.label)
		}
	default:
		return Constraint{}, fmt.Errorf("%w %q: unknown key %q, want one of %s", ErrInvalidConstraint, s, rawKey, allowedKeys)
	}
	switch {
	case value == "":
		return Constraint{}, fmt.Errorf("%w %q: empty value after %s", ErrInvalidConstraint, s, c.op())
	case strings.ContainsAny(value, "=!<>"):
		return Constraint{}, fmt.Errorf("%w %q: value %q must not contain =, !, < or >", ErrInvalidConstraint, s, value)
	}
	switch c.key {
	case keyRole:
		if !strings.EqualFold(value, "manager") && !strings.EqualFold(value, "worker") {
			return Constraint{}, fmt.Errorf("%w %q: node.role must be manager or worker, not %q", ErrInvalidConstraint, s, value)
		}
	case keyArch:
		c.value = normArch(value)
	}
	return c, nil
}

func (c Constraint) op() string {
	if c.equal {
		return "=="
	}
	return "!="
}

// String returns the constraint in canonical form, e.g. node.labels.zone==a;
// it parses back to an equal Constraint.
func (c Constraint) String() string {
	var key string
	switch c.key {
	case keyID:
		key = "node.id"
	case keyHostname:
		key = "node.hostname"
	case keyRole:
		key = "node.role"
	case keyOS:
		key = "node.platform.os"
	case keyArch:
		key = "node.platform.arch"
	case keyLabel:
		key = labelPrefix + c.label
	default:
		return "<invalid constraint>"
	}
	return key + c.op() + c.value
}

// Matches reports whether the node satisfies the constraint.
func (c Constraint) Matches(n *minkepb.Node) bool {
	return c.key != keyInvalid && c.matchesValue(c.attribute(n))
}

// matchesValue reports whether a node whose attribute reads got satisfies
// the constraint.
func (c Constraint) matchesValue(got string) bool {
	return strings.EqualFold(got, c.value) == c.equal
}

// attribute returns the node's value for the constraint's key, normalised
// as matching expects.
func (c Constraint) attribute(n *minkepb.Node) string {
	var got string
	switch c.key {
	case keyID:
		got = n.GetMeta().GetId()
	case keyHostname:
		got = n.GetDescription().GetHostname()
	case keyRole:
		got = "worker"
		if n.GetRole() == minkepb.NodeRole_MANAGER {
			got = "manager"
		}
	case keyOS:
		got = n.GetDescription().GetPlatform().GetOs()
	case keyArch:
		got = normArch(n.GetDescription().GetPlatform().GetArchitecture())
	case keyLabel:
		got = n.GetSpec().GetLabels()[c.label]
	}
	return got
}

// normArch maps architecture aliases to Go's names, as Docker reports
// uname's x86_64 where images say amd64.
func normArch(a string) string {
	switch strings.ToLower(a) {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// Preference is one placement preference. Only spread exists: tasks of a
// service are spread evenly over the distinct values of a node label; nodes
// without the label (or with an empty value, as in SwarmKit) form one more
// group. Label values compare exactly here, unlike in constraints, because
// they are grouped as map keys (SwarmKit does the same).
//
// The zero Preference spreads over the label with the empty name, which no
// node has, so it has no effect.
type Preference struct {
	label string
}

// ParsePreference parses spread=node.labels.<name>. The strategy and the
// node.labels. prefix are case-insensitive, the label name is not.
func ParsePreference(s string) (Preference, error) {
	strategy, arg, ok := strings.Cut(s, "=")
	strategy, arg = strings.TrimSpace(strategy), strings.TrimSpace(arg)
	switch {
	case !ok:
		return Preference{}, fmt.Errorf("%w %q: want spread=node.labels.<name>", ErrInvalidPreference, s)
	case !strings.EqualFold(strategy, "spread"):
		return Preference{}, fmt.Errorf("%w %q: unknown strategy %q, only spread is supported (spread=node.labels.<name>)", ErrInvalidPreference, s, strategy)
	case len(arg) <= len(labelPrefix) || !strings.EqualFold(arg[:len(labelPrefix)], labelPrefix):
		return Preference{}, fmt.Errorf("%w %q: want spread=node.labels.<name>", ErrInvalidPreference, s)
	}
	return Preference{label: arg[len(labelPrefix):]}, nil
}

// String returns the preference as spread=node.labels.<name>.
func (p Preference) String() string { return "spread=" + labelPrefix + p.label }

// Placement is a service's placement rules.
type Placement struct {
	// Constraints must all hold on a node for it to take the service's
	// tasks.
	Constraints []Constraint
	// Preferences are nested spreads, outermost first: tasks are spread
	// evenly over the first label's values, then within each value over
	// the second label's values, and so on; within the innermost group the
	// usual ranking picks the node.
	Preferences []Preference
	// MaxReplicasPerNode caps the service's active tasks on one node; 0
	// means no cap.
	MaxReplicasPerNode uint64
}

// servicePlacement is one service's Placement prepared for a batch.
type servicePlacement struct {
	Placement
	// eligKey identifies the constraint list and shapeKey the constraints
	// and preferences together: services with equal keys share the cached
	// eligible nodes and spread groups of a batch.
	eligKey, shapeKey string
}

func newServicePlacement(p Placement) *servicePlacement {
	var b strings.Builder
	for _, c := range p.Constraints {
		b.WriteString(c.String())
		b.WriteByte(0)
	}
	elig := b.String()
	b.WriteByte(1)
	for _, pr := range p.Preferences {
		b.WriteString(pr.label)
		b.WriteByte(0)
	}
	return &servicePlacement{Placement: p, eligKey: elig, shapeKey: b.String()}
}

// failedConstraint returns the index of the first constraint the node
// fails, or -1 when it satisfies them all.
func (p *servicePlacement) failedConstraint(n *minkepb.Node) int {
	for i, c := range p.Constraints {
		if !c.Matches(n) {
			return i
		}
	}
	return -1
}
