package main

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/scheduler"
)

// createOptions are the flags of `service create` as typed. Values stay
// strings so that buildServiceSpec can reject them with messages that name
// the flag; an empty string means "not given" and leaves the manager's
// default in place.
type createOptions struct {
	name               string
	replicas           string
	env                []string
	labels             []string
	limitMemory        string
	limitCPU           string
	reserveMemory      string
	reserveCPU         string
	entrypoint         string
	workdir            string
	user               string
	stopGracePeriod    string
	restartCondition   string
	restartDelay       string
	restartMaxAttempts string
	capAdd             []string
	capDrop            []string
	constraints        []string
	placementPrefs     []string
	maxPerNode         string
	publish            []string
	restartWindow      string
	mode               string
	maxConcurrent      string
	update, rollback   updateConfigOptions
	endpointMode       string
	detach             bool
	noResolveImage     bool
	health             healthOptions  // health.go
	process            processOptions // stop.go
	sandbox            sandboxOptions // sandbox.go
	network            networkOptions // network_flags.go
}

// restartConditions maps --restart-condition values to the proto enum.
var restartConditions = map[string]minkepb.RestartPolicy_Condition{
	"any":        minkepb.RestartPolicy_ANY,
	"on-failure": minkepb.RestartPolicy_ON_FAILURE,
	"none":       minkepb.RestartPolicy_NONE,
}

// buildServiceSpec turns `service create` flags and arguments (IMAGE [CMD
// [ARG...]]) into a spec, or returns the first invalid value. It does no
// I/O, so every check here happens before any RPC.
func buildServiceSpec(o createOptions, args []string) (*minkepb.ServiceSpec, error) {
	if len(args) == 0 || args[0] == "" {
		return nil, fmt.Errorf("missing IMAGE: usage is service create [OPTIONS] IMAGE [CMD [ARG...]]")
	}
	modeSpec, err := buildMode(o.mode, o.replicas, o.maxConcurrent)
	if err != nil {
		return nil, err
	}
	updateConfig, err := buildUpdateConfig("update", o.update, nil)
	if err != nil {
		return nil, err
	}
	rollbackConfig, err := buildUpdateConfig("rollback", o.rollback, nil)
	if err != nil {
		return nil, err
	}
	c := &minkepb.ContainerSpec{
		Image: args[0],
		Dir:   o.workdir,
		User:  o.user,
	}
	if len(args) > 1 {
		c.Args = append([]string(nil), args[1:]...)
	}
	if o.entrypoint != "" {
		c.Command = strings.Fields(o.entrypoint)
	}
	for _, e := range o.env {
		if _, _, err := parseKeyValue("env", e); err != nil {
			return nil, err
		}
		c.Env = append(c.Env, e)
	}
	var labels map[string]string
	for _, l := range o.labels {
		k, v, err := parseKeyValue("label", l)
		if err != nil {
			return nil, err
		}
		if labels == nil {
			labels = make(map[string]string)
		}
		labels[k] = v
	}
	if o.stopGracePeriod != "" {
		d, err := parseDuration("stop-grace-period", o.stopGracePeriod)
		if err != nil {
			return nil, err
		}
		c.StopGracePeriod = durationpb.New(d)
	}
	if err := o.health.apply(c); err != nil {
		return nil, err
	}
	if err := o.process.apply(c); err != nil {
		return nil, err
	}
	task := &minkepb.TaskSpec{Container: c}

	limits, err := buildResources("limit", o.limitMemory, o.limitCPU)
	if err != nil {
		return nil, err
	}
	reservations, err := buildResources("reserve", o.reserveMemory, o.reserveCPU)
	if err != nil {
		return nil, err
	}
	if limits != nil || reservations != nil {
		task.Resources = &minkepb.ResourceRequirements{Limits: limits, Reservations: reservations}
	}

	restart, err := buildRestartPolicy(o)
	if err != nil {
		return nil, err
	}
	task.Restart = restart
	c.CapAdd, c.CapDrop = o.capAdd, o.capDrop
	if err := o.sandbox.apply(task); err != nil {
		return nil, err
	}
	if err := o.network.apply(task); err != nil {
		return nil, err
	}

	if len(o.constraints) > 0 || len(o.placementPrefs) > 0 || o.maxPerNode != "" {
		p := &minkepb.Placement{}
		for _, c := range o.constraints {
			if _, err := scheduler.ParseConstraint(c); err != nil {
				return nil, fmt.Errorf("--constraint: %w", err)
			}
			p.Constraints = append(p.Constraints, c)
		}
		for _, pref := range o.placementPrefs {
			if _, err := scheduler.ParsePreference(pref); err != nil {
				return nil, fmt.Errorf("--placement-pref: %w", err)
			}
			p.Preferences = append(p.Preferences, pref)
		}
		if o.maxPerNode != "" {
			if p.MaxReplicasPerNode, err = parseCount("replicas-max-per-node", o.maxPerNode); err != nil {
				return nil, err
			}
		}
		task.Placement = p
	}

	endpoint, err := parseEndpoint(o.publish, o.endpointMode)
	if err != nil {
		return nil, err
	}
	return &minkepb.ServiceSpec{
		Name:           o.name,
		Labels:         labels,
		Task:           task,
		Mode:           modeSpec.Mode,
		UpdateConfig:   updateConfig,
		RollbackConfig: rollbackConfig,
		Endpoint:       endpoint,
	}, nil
}

// buildResources parses --PREFIX-memory and --PREFIX-cpu; nil when neither
// is given.
func buildResources(prefix, memory, cpu string) (*minkepb.Resources, error) {
	if memory == "" && cpu == "" {
		return nil, nil
	}
	r := &minkepb.Resources{}
	if memory != "" {
		n, err := parseSize(prefix+"-memory", memory)
		if err != nil {
			return nil, err
		}
		r.MemoryBytes = n
	}
	if cpu != "" {
		n, err := parseNanoCPUs(prefix+"-cpu", cpu)
		if err != nil {
			return nil, err
		}
		r.NanoCpus = n
	}
	return r, nil
}

// buildRestartPolicy parses the --restart-* flags; nil when none is given,
// so the manager's defaults apply.
func buildRestartPolicy(o createOptions) (*minkepb.RestartPolicy, error) {
	if o.restartCondition == "" && o.restartDelay == "" && o.restartMaxAttempts == "" && o.restartWindow == "" {
		return nil, nil
	}
	p := &minkepb.RestartPolicy{}
	if o.restartCondition != "" {
		cond, ok := restartConditions[strings.ToLower(o.restartCondition)]
		if !ok {
			return nil, fmt.Errorf("invalid --restart-condition %q: want any, on-failure or none", o.restartCondition)
		}
		p.Condition = cond
	}
	if o.restartDelay != "" {
		d, err := parseDuration("restart-delay", o.restartDelay)
		if err != nil {
			return nil, err
		}
		p.Delay = durationpb.New(d)
	}
	if o.restartMaxAttempts != "" {
		n, err := parseCount("restart-max-attempts", o.restartMaxAttempts)
		if err != nil {
			return nil, err
		}
		p.MaxAttempts = n
	}
	if o.restartWindow != "" {
		d, err := parseDuration("restart-window", o.restartWindow)
		if err != nil {
			return nil, err
		}
		p.Window = durationpb.New(d)
	}
	return p, nil
}

// formatDuration renders a proto duration for people; "" when unset.
func formatDuration(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().Round(time.Millisecond).String()
}
