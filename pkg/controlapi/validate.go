package controlapi

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
	"github.com/minke-io/minke/pkg/scheduler"
)

// MinMemoryLimit is the smallest memory limit a container may have (as
// docker's 6MB floor); below it the runtime itself cannot start.
const MinMemoryLimit = 6 << 20

// MaxReplicas bounds a service's size; beyond it is certainly a typo.
const MaxReplicas = 1_000_000

var serviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// validateSpec checks a service spec. Errors name the field, the value and
// what is allowed.
func validateSpec(spec *minkepb.ServiceSpec) error {
	if spec == nil {
		return fmt.Errorf("spec is required")
	}
	if spec.GetName() != "" && !serviceName.MatchString(spec.GetName()) {
		return fmt.Errorf("invalid name %q: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", spec.GetName())
	}
	r, ok := spec.GetMode().(*minkepb.ServiceSpec_Replicated)
	if !ok || r.Replicated == nil {
		return fmt.Errorf("mode is required: only replicated services are supported (replicas 0..%d)", MaxReplicas)
	}
	if n := r.Replicated.GetReplicas(); n > MaxReplicas {
		return fmt.Errorf("invalid replicas %d: must be between 0 and %d", n, MaxReplicas)
	}
	c := spec.GetTask().GetContainer()
	if c.GetImage() == "" {
		return fmt.Errorf("image is required: give a reference like NAME[:TAG] or REGISTRY/NAME[:TAG][@DIGEST]")
	}
	if _, err := name.ParseReference(c.GetImage()); err != nil {
		return fmt.Errorf("invalid image %q: %v; want NAME[:TAG] or REGISTRY/NAME[:TAG][@DIGEST]", c.GetImage(), err)
	}
	for _, e := range c.GetEnv() {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("invalid env %q: want KEY=VALUE with a non-empty KEY", e)
		}
	}
	if err := runtime.ValidateCapabilities(c.GetCapAdd(), c.GetCapDrop()); err != nil {
		return fmt.Errorf("invalid capabilities: %s", strings.TrimPrefix(err.Error(), runtime.ErrInvalidSpec.Error()+": "))
	}
	if err := validateSandbox(spec.GetTask()); err != nil {
		return err
	}
	if d := c.GetStopGracePeriod(); d != nil && d.AsDuration() < 0 {
		return fmt.Errorf("invalid stop_grace_period %s: must not be negative", d.AsDuration())
	}
	for _, res := range []struct {
		field string
		r     *minkepb.Resources
	}{{"limits", spec.GetTask().GetResources().GetLimits()}, {"reservations", spec.GetTask().GetResources().GetReservations()}} {
		if m := res.r.GetMemoryBytes(); m < 0 || (res.field == "limits" && m > 0 && m < MinMemoryLimit) {
			return fmt.Errorf("invalid %s memory %d bytes: must be 0 (none) or at least 6MiB", res.field, m)
		}
		if c := res.r.GetNanoCpus(); c < 0 {
			return fmt.Errorf("invalid %s nano_cpus %d: must not be negative", res.field, c)
		}
	}
	for _, c := range spec.GetTask().GetPlacement().GetConstraints() {
		if _, err := scheduler.ParseConstraint(c); err != nil {
			return fmt.Errorf("placement.constraints: %w", err)
		}
	}
	for _, pref := range spec.GetTask().GetPlacement().GetPreferences() {
		if _, err := scheduler.ParsePreference(pref); err != nil {
			return fmt.Errorf("placement.preferences: %w", err)
		}
	}
	p := spec.GetTask().GetRestart()
	if d := p.GetDelay(); d != nil && d.AsDuration() < 0 {
		return fmt.Errorf("invalid restart delay %s: must not be negative", d.AsDuration())
	}
	if d := p.GetWindow(); d != nil && d.AsDuration() < 0 {
		return fmt.Errorf("invalid restart window %s: must not be negative", d.AsDuration())
	}
	return nil
}
