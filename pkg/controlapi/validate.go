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
	if err := validateMode(spec); err != nil {
		return err
	}
	if err := validateUpdateConfig("update_config", spec.GetUpdateConfig(), false); err != nil {
		return err
	}
	if err := validateUpdateConfig("rollback_config", spec.GetRollbackConfig(), true); err != nil {
		return err
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

// validateMode checks the service mode and its counts.
func validateMode(spec *minkepb.ServiceSpec) error {
	switch m := spec.GetMode().(type) {
	case *minkepb.ServiceSpec_Replicated:
		if n := m.Replicated.GetReplicas(); n > MaxReplicas {
			return fmt.Errorf("invalid replicas %d: must be between 0 and %d", n, MaxReplicas)
		}
	case *minkepb.ServiceSpec_Global:
	case *minkepb.ServiceSpec_GlobalJob:
	case *minkepb.ServiceSpec_ReplicatedJob:
		n := m.ReplicatedJob.GetTotalCompletions()
		if n == 0 || n > MaxReplicas {
			return fmt.Errorf("invalid replicated_job.total_completions (--replicas) %d: a replicated job must complete between 1 and %d tasks", n, MaxReplicas)
		}
		if c := m.ReplicatedJob.GetMaxConcurrent(); c > n {
			return fmt.Errorf("invalid replicated_job.max_concurrent %d: must not exceed total_completions (--replicas) %d", c, n)
		}
	default:
		return fmt.Errorf("mode is required: replicated (replicas 0..%d), global, replicated_job or global_job", MaxReplicas)
	}
	return nil
}

// validateUpdateConfig checks an update or rollback config; nil takes the
// defaults.
func validateUpdateConfig(field string, c *minkepb.UpdateConfig, rollback bool) error {
	if c == nil {
		return nil
	}
	if d := c.GetDelay(); d != nil && d.AsDuration() < 0 {
		return fmt.Errorf("invalid %s.delay %s: must not be negative", field, d.AsDuration())
	}
	if d := c.GetMonitor(); d != nil && d.AsDuration() < 0 {
		return fmt.Errorf("invalid %s.monitor %s: must not be negative", field, d.AsDuration())
	}
	if r := c.GetMaxFailureRatio(); r < 0 || r > 1 || r != r {
		return fmt.Errorf("invalid %s.max_failure_ratio %v: must be between 0 and 1", field, r)
	}
	if _, ok := minkepb.UpdateConfig_FailureAction_name[int32(c.GetFailureAction())]; !ok {
		return fmt.Errorf("invalid %s.failure_action %d: want pause, continue or rollback", field, c.GetFailureAction())
	}
	if rollback && c.GetFailureAction() == minkepb.UpdateConfig_ROLLBACK {
		return fmt.Errorf("invalid %s.failure_action rollback: a rollback that fails can only pause or continue", field)
	}
	if _, ok := minkepb.UpdateConfig_Order_name[int32(c.GetOrder())]; !ok {
		return fmt.Errorf("invalid %s.order %d: want stop-first or start-first", field, c.GetOrder())
	}
	return nil
}

// validateNodeUpdate checks what can be checked of a node update without
// the node (label-rm names are checked against its labels when applied).
func validateNodeUpdate(req *minkepb.UpdateNodeRequest) error {
	for k := range req.GetLabelAdd() {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("invalid --label-add: the label key is empty; want KEY=VALUE")
		}
	}
	if req.GetSetAvailability() {
		if _, ok := minkepb.NodeSpec_Availability_name[int32(req.GetAvailability())]; !ok {
			return fmt.Errorf("invalid availability %d: want active, pause or drain", req.GetAvailability())
		}
	}
	return nil
}
