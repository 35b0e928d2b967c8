package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/scheduler"
)

// updateAPI is what `service update`, `rollback`, `rebalance` and
// `cluster update` need beyond controlAPI; *client.Client has it.
type updateAPI interface {
	ModifyService(ctx context.Context, ref string, mutate func(*minkepb.ServiceSpec) error) (*minkepb.Service, error)
	RollbackService(ctx context.Context, ref string) (*minkepb.Service, error)
	RebalanceService(ctx context.Context, ref string) (*minkepb.Service, error)
	SetTaskHistoryLimit(ctx context.Context, limit int64) (*minkepb.Cluster, error)
}

func updater(api controlAPI) (updateAPI, error) {
	u, ok := api.(updateAPI)
	if !ok {
		return nil, fmt.Errorf("this client cannot update services")
	}
	return u, nil
}

// updateConfigOptions are the --update-* (or --rollback-*) flags as typed.
type updateConfigOptions struct {
	parallelism, delay, failureAction, monitor, maxFailureRatio, order string
}

func addUpdateConfigFlags(f *pflag.FlagSet, prefix string, o *updateConfigOptions) {
	what := "update"
	if prefix == "rollback" {
		what = "rollback"
	}
	f.StringVar(&o.parallelism, prefix+"-parallelism", "", "tasks replaced at a time in an "+what+", 0 for all (default 1)")
	f.StringVar(&o.delay, prefix+"-delay", "", "wait between "+what+" batches, e.g. 10s (default 0s)")
	actions := "pause, continue or rollback"
	if prefix == "rollback" {
		actions = "pause or continue"
	}
	f.StringVar(&o.failureAction, prefix+"-failure-action", "", "action when an "+what+" fails: "+actions+" (default pause)")
	f.StringVar(&o.monitor, prefix+"-monitor", "", "how long after each task's "+what+" to watch it for failure (default 5s)")
	f.StringVar(&o.maxFailureRatio, prefix+"-max-failure-ratio", "", "fraction of tasks that may fail in an "+what+", 0 to 1 (default 0)")
	f.StringVar(&o.order, prefix+"-order", "", "stop-first (old task stops before the new starts) or start-first (default stop-first)")
}

func (o updateConfigOptions) given() bool {
	return o != updateConfigOptions{}
}

var failureActions = map[string]minkepb.UpdateConfig_FailureAction{
	"pause": minkepb.UpdateConfig_PAUSE, "continue": minkepb.UpdateConfig_CONTINUE, "rollback": minkepb.UpdateConfig_ROLLBACK,
}

var updateOrders = map[string]minkepb.UpdateConfig_Order{
	"stop-first": minkepb.UpdateConfig_STOP_FIRST, "start-first": minkepb.UpdateConfig_START_FIRST,
}

// buildUpdateConfig applies the given --PREFIX-* flags to base (nil:
// swarm's defaults). It returns base unchanged when no flag is given.
func buildUpdateConfig(prefix string, o updateConfigOptions, base *minkepb.UpdateConfig) (*minkepb.UpdateConfig, error) {
	if !o.given() {
		return base, nil
	}
	c := &minkepb.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(5 * time.Second)}
	if base != nil {
		c = &minkepb.UpdateConfig{Parallelism: base.GetParallelism(), Delay: base.GetDelay(), FailureAction: base.GetFailureAction(),
			Monitor: base.GetMonitor(), MaxFailureRatio: base.GetMaxFailureRatio(), Order: base.GetOrder()}
	}
	var err error
	if o.parallelism != "" {
		if c.Parallelism, err = parseCount(prefix+"-parallelism", o.parallelism); err != nil {
			return nil, err
		}
	}
	if o.delay != "" {
		d, err := parseDuration(prefix+"-delay", o.delay)
		if err != nil {
			return nil, err
		}
		c.Delay = durationpb.New(d)
	}
	if o.monitor != "" {
		d, err := parseDuration(prefix+"-monitor", o.monitor)
		if err != nil {
			return nil, err
		}
		c.Monitor = durationpb.New(d)
	}
	if o.failureAction != "" {
		a, ok := failureActions[strings.ToLower(o.failureAction)]
		if !ok || (prefix == "rollback" && a == minkepb.UpdateConfig_ROLLBACK) {
			want := "pause, continue or rollback"
			if prefix == "rollback" {
				want = "pause or continue"
			}
			return nil, fmt.Errorf("invalid --%s-failure-action %q: want %s", prefix, o.failureAction, want)
		}
		c.FailureAction = a
	}
	if o.maxFailureRatio != "" {
		r, err := strconv.ParseFloat(strings.TrimSpace(o.maxFailureRatio), 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("invalid --%s-max-failure-ratio %q: want a number between 0 and 1", prefix, o.maxFailureRatio)
		}
		c.MaxFailureRatio = r
	}
	if o.order != "" {
		ord, ok := updateOrders[strings.ToLower(o.order)]
		if !ok {
			return nil, fmt.Errorf("invalid --%s-order %q: want stop-first or start-first", prefix, o.order)
		}
		c.Order = ord
	}
	return c, nil
}

// buildMode turns --mode, --replicas and --max-concurrent into a mode.
func buildMode(mode, replicas, maxConcurrent string) (*minkepb.ServiceSpec, error) {
	spec := &minkepb.ServiceSpec{}
	var n uint64 = 1
	var err error
	if replicas != "" {
		if n, err = parseCount("replicas", replicas); err != nil {
			return nil, err
		}
	}
	var mc uint64
	if maxConcurrent != "" {
		if mc, err = parseCount("max-concurrent", maxConcurrent); err != nil {
			return nil, err
		}
	}
	switch mode {
	case "", "replicated":
		spec.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: n}}
	case "global":
		spec.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	case "replicated-job":
		if n == 0 {
			return nil, fmt.Errorf("invalid --replicas 0 for a replicated job: it must complete at least 1 task")
		}
		spec.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: n, MaxConcurrent: mc}}
	case "global-job":
		spec.Mode = &minkepb.ServiceSpec_GlobalJob{GlobalJob: &minkepb.GlobalJob{}}
	default:
		return nil, fmt.Errorf("invalid --mode %q: want replicated, global, replicated-job or global-job", mode)
	}
	if mode != "replicated-job" && maxConcurrent != "" {
		return nil, fmt.Errorf("--max-concurrent applies only to --mode replicated-job")
	}
	if (mode == "global" || mode == "global-job") && replicas != "" {
		return nil, fmt.Errorf("--replicas does not apply to --mode %s: it runs one task per eligible node", mode)
	}
	return spec, nil
}

// serviceUpdateOptions are the flags of `service update`.
type serviceUpdateOptions struct {
	image, args, entrypoint, workdir, user, stopGracePeriod           string
	replicas, maxConcurrent, maxPerNode                               string
	limitMemory, limitCPU, reserveMemory, reserveCPU                  string
	restartCondition, restartDelay, restartMaxAttempts, restartWindow string
	mode                                                              string
	envAdd, envRm, labelAdd, labelRm                                  []string
	constraintAdd, constraintRm, prefAdd, prefRm                      []string
	capAdd, capDrop                                                   []string
	update, rollback                                                  updateConfigOptions
	more                                                              moreUpdateOptions
	network                                                           networkUpdateOptions // network_flags.go
	force, doRollback, detach                                         bool
}

func newServiceUpdateCmd(a *app) *cobra.Command {
	return serviceUpdateCmd(a, &serviceUpdateOptions{})
}

// serviceUpdateCmd is `service update` with its flags bound to o.
func serviceUpdateCmd(a *app, o *serviceUpdateOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE",
		Short: "Update a service",
		Long: `Update a service. Changing its task (image, command, env, resources,
placement, restart policy) or --force starts a rolling update with the
service's update config; --rollback returns it to its previous spec. Unless
--detach is given, swarmctl follows the update until it completes (exit 0),
pauses or rolls back (exit 1).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changed := cmd.Flags().Changed
			if o.doRollback {
				var other []string
				cmd.Flags().Visit(func(f *pflag.Flag) {
					if f.Name != "rollback" && f.Name != "detach" && f.Name != "host" {
						other = append(other, "--"+f.Name)
					}
				})
				if len(other) > 0 {
					return fmt.Errorf("--rollback cannot be combined with %s", strings.Join(other, ", "))
				}
			}
			// Check every flag before any RPC.
			if _, err := applyServiceUpdate(&minkepb.ServiceSpec{}, *o, changed); err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withAPI(ctx, func(api controlAPI) error {
				u, err := updater(api)
				if err != nil {
					return err
				}
				if err := o.network.resolve(ctx, api); err != nil {
					return err
				}
				var svc *minkepb.Service
				if o.doRollback {
					svc, err = u.RollbackService(ctx, args[0])
				} else {
					svc, err = u.ModifyService(ctx, args[0], func(spec *minkepb.ServiceSpec) error {
						_, err := applyServiceUpdate(spec, *o, changed)
						return err
					})
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, svc.GetSpec().GetName())
				if o.detach {
					return nil
				}
				return followUpdate(ctx, api, a.stderr, svc)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "new image reference")
	f.StringVar(&o.args, "args", "", "new container arguments (replace the image's CMD; split on spaces)")
	f.StringVar(&o.entrypoint, "entrypoint", "", "new ENTRYPOINT (split on spaces)")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "user to run as: NAME, UID or UID:GID")
	f.StringVar(&o.stopGracePeriod, "stop-grace-period", "", "time between the stop signal and SIGKILL, e.g. 10s")
	f.StringVar(&o.mode, "mode", "", "a service's mode cannot change; given only to get a clear error")
	f.StringVar(&o.replicas, "replicas", "", "number of tasks (replicated) or of completions (replicated-job)")
	f.StringVar(&o.maxConcurrent, "max-concurrent", "", "tasks of a replicated job run at once")
	f.StringVar(&o.maxPerNode, "replicas-max-per-node", "", "most tasks of the service on one node (0: no limit)")
	f.StringVar(&o.limitMemory, "limit-memory", "", "memory limit, e.g. 64M (0: none)")
	f.StringVar(&o.limitCPU, "limit-cpu", "", "CPU limit in CPUs, e.g. 0.5 (0: none)")
	f.StringVar(&o.reserveMemory, "reserve-memory", "", "memory to reserve, e.g. 64M (0: none)")
	f.StringVar(&o.reserveCPU, "reserve-cpu", "", "CPUs to reserve, e.g. 0.25 (0: none)")
	f.StringVar(&o.restartCondition, "restart-condition", "", "restart when a task ends: any, on-failure or none")
	f.StringVar(&o.restartDelay, "restart-delay", "", "delay before a replacement task starts, e.g. 5s")
	f.StringVar(&o.restartMaxAttempts, "restart-max-attempts", "", "restarts before giving up (0: unlimited)")
	f.StringVar(&o.restartWindow, "restart-window", "", "window in which restarts are counted, e.g. 1m")
	f.StringArrayVar(&o.envAdd, "env-add", nil, "add or replace an environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.envRm, "env-rm", nil, "remove an environment variable by KEY (repeatable)")
	f.StringArrayVar(&o.labelAdd, "label-add", nil, "add or replace a service label KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.labelRm, "label-rm", nil, "remove a service label by KEY (repeatable)")
	f.StringArrayVar(&o.constraintAdd, "constraint-add", nil, "add a placement constraint, e.g. node.labels.zone==a (repeatable)")
	f.StringArrayVar(&o.constraintRm, "constraint-rm", nil, "remove a placement constraint (repeatable)")
	f.StringArrayVar(&o.prefAdd, "placement-pref-add", nil, "add a placement preference spread=node.labels.KEY (repeatable)")
	f.StringArrayVar(&o.prefRm, "placement-pref-rm", nil, "remove a placement preference (repeatable)")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "add a Linux capability (repeatable)")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "drop a Linux capability, or ALL (repeatable)")
	addUpdateConfigFlags(f, "update", &o.update)
	addUpdateConfigFlags(f, "rollback", &o.rollback)
	o.more.register(f)
	o.network.register(f)
	f.BoolVar(&o.force, "force", false, "redeploy the tasks even if nothing changed")
	f.BoolVar(&o.doRollback, "rollback", false, "return to the previous spec")
	f.BoolVarP(&o.detach, "detach", "d", false, "exit once the update is accepted instead of following it")
	return cmd
}

// applyServiceUpdate changes spec as the given flags say. changed reports
// whether a flag was given.
func applyServiceUpdate(spec *minkepb.ServiceSpec, o serviceUpdateOptions, changed func(string) bool) (*minkepb.ServiceSpec, error) {
	if spec.Task == nil {
		spec.Task = &minkepb.TaskSpec{}
	}
	task := spec.Task
	if task.Container == nil {
		task.Container = &minkepb.ContainerSpec{}
	}
	c := task.Container
	if changed("mode") {
		m, err := buildMode(o.mode, "", "")
		if err != nil {
			return nil, err
		}
		if spec.Mode != nil && serviceMode(m) != serviceMode(spec) {
			return nil, fmt.Errorf("invalid --mode %s: service %s is %s and a service's mode cannot change; remove it and create it again",
				o.mode, spec.GetName(), serviceMode(spec))
		}
	}
	if changed("image") {
		if o.image == "" {
			return nil, fmt.Errorf("invalid --image \"\": give a reference like NAME[:TAG]")
		}
		c.Image = o.image
	}
	if changed("args") {
		c.Args = strings.Fields(o.args)
	}
	if changed("entrypoint") {
		c.Command = strings.Fields(o.entrypoint)
	}
	if changed("workdir") {
		c.Dir = o.workdir
	}
	if changed("user") {
		c.User = o.user
	}
	if changed("stop-grace-period") {
		d, err := parseDuration("stop-grace-period", o.stopGracePeriod)
		if err != nil {
			return nil, err
		}
		c.StopGracePeriod = durationpb.New(d)
	}
	for _, e := range o.envAdd {
		k, _, err := parseKeyValue("env-add", e)
		if err != nil {
			return nil, err
		}
		c.Env = slices.DeleteFunc(c.Env, func(x string) bool { return strings.SplitN(x, "=", 2)[0] == k })
		c.Env = append(c.Env, e)
	}
	for _, k := range o.envRm {
		c.Env = slices.DeleteFunc(c.Env, func(x string) bool { return strings.SplitN(x, "=", 2)[0] == k })
	}
	for _, l := range o.labelAdd {
		k, v, err := parseKeyValue("label-add", l)
		if err != nil {
			return nil, err
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	for _, k := range o.labelRm {
		delete(spec.Labels, k)
	}
	for _, x := range o.capAdd {
		if !slices.Contains(c.CapAdd, x) {
			c.CapAdd = append(c.CapAdd, x)
		}
		c.CapDrop = slices.DeleteFunc(c.CapDrop, func(y string) bool { return y == x })
	}
	for _, x := range o.capDrop {
		if !slices.Contains(c.CapDrop, x) {
			c.CapDrop = append(c.CapDrop, x)
		}
		c.CapAdd = slices.DeleteFunc(c.CapAdd, func(y string) bool { return y == x })
	}
	if err := applyResources(task, o, changed); err != nil {
		return nil, err
	}
	if err := applyRestart(task, o, changed); err != nil {
		return nil, err
	}
	if err := applyPlacement(task, o, changed); err != nil {
		return nil, err
	}
	if err := applyCounts(spec, o, changed); err != nil {
		return nil, err
	}
	if err := o.more.apply(spec, changed); err != nil {
		return nil, err
	}
	if err := o.network.apply(task); err != nil {
		return nil, err
	}
	var err error
	if spec.UpdateConfig, err = buildUpdateConfig("update", o.update, spec.GetUpdateConfig()); err != nil {
		return nil, err
	}
	if spec.RollbackConfig, err = buildUpdateConfig("rollback", o.rollback, spec.GetRollbackConfig()); err != nil {
		return nil, err
	}
	if o.force {
		task.ForceUpdate++
	}
	return spec, nil
}

func applyResources(task *minkepb.TaskSpec, o serviceUpdateOptions, changed func(string) bool) error {
	set := func(flag, v string, get func(*minkepb.ResourceRequirements) **minkepb.Resources, mem bool) error {
		if !changed(flag) {
			return nil
		}
		if task.Resources == nil {
			task.Resources = &minkepb.ResourceRequirements{}
		}
		r := get(task.Resources)
		if *r == nil {
			*r = &minkepb.Resources{}
		}
		if mem {
			if v == "0" {
				(*r).MemoryBytes = 0
				return nil
			}
			n, err := parseSize(flag, v)
			if err != nil {
				return err
			}
			(*r).MemoryBytes = n
			return nil
		}
		n, err := parseNanoCPUs(flag, v)
		if err != nil {
			return err
		}
		(*r).NanoCpus = n
		return nil
	}
	limits := func(r *minkepb.ResourceRequirements) **minkepb.Resources { return &r.Limits }
	reserve := func(r *minkepb.ResourceRequirements) **minkepb.Resources { return &r.Reservations }
	for _, s := range []struct {
		flag, v string
		get     func(*minkepb.ResourceRequirements) **minkepb.Resources
		mem     bool
	}{
		{"limit-memory", o.limitMemory, limits, true}, {"limit-cpu", o.limitCPU, limits, false},
		{"reserve-memory", o.reserveMemory, reserve, true}, {"reserve-cpu", o.reserveCPU, reserve, false},
	} {
		if err := set(s.flag, s.v, s.get, s.mem); err != nil {
			return err
		}
	}
	return nil
}

func applyRestart(task *minkepb.TaskSpec, o serviceUpdateOptions, changed func(string) bool) error {
	if !changed("restart-condition") && !changed("restart-delay") && !changed("restart-max-attempts") && !changed("restart-window") {
		return nil
	}
	if task.Restart == nil {
		task.Restart = &minkepb.RestartPolicy{}
	}
	p := task.Restart
	if changed("restart-condition") {
		cond, ok := restartConditions[strings.ToLower(o.restartCondition)]
		if !ok {
			return fmt.Errorf("invalid --restart-condition %q: want any, on-failure or none", o.restartCondition)
		}
		p.Condition = cond
	}
	if changed("restart-delay") {
		d, err := parseDuration("restart-delay", o.restartDelay)
		if err != nil {
			return err
		}
		p.Delay = durationpb.New(d)
	}
	if changed("restart-max-attempts") {
		n, err := parseCount("restart-max-attempts", o.restartMaxAttempts)
		if err != nil {
			return err
		}
		p.MaxAttempts = n
	}
	if changed("restart-window") {
		d, err := parseDuration("restart-window", o.restartWindow)
		if err != nil {
			return err
		}
		p.Window = durationpb.New(d)
	}
	return nil
}

func applyPlacement(task *minkepb.TaskSpec, o serviceUpdateOptions, changed func(string) bool) error {
	if len(o.constraintAdd)+len(o.constraintRm)+len(o.prefAdd)+len(o.prefRm) == 0 && !changed("replicas-max-per-node") {
		return nil
	}
	if task.Placement == nil {
		task.Placement = &minkepb.Placement{}
	}
	p := task.Placement
	for _, c := range o.constraintRm {
		p.Constraints = slices.DeleteFunc(p.Constraints, func(x string) bool { return sameExpr(x, c) })
	}
	for _, c := range o.constraintAdd {
		if _, err := scheduler.ParseConstraint(c); err != nil {
			return fmt.Errorf("--constraint-add: %w", err)
		}
		if !slices.ContainsFunc(p.Constraints, func(x string) bool { return sameExpr(x, c) }) {
			p.Constraints = append(p.Constraints, c)
		}
	}
	for _, c := range o.prefRm {
		p.Preferences = slices.DeleteFunc(p.Preferences, func(x string) bool { return sameExpr(x, c) })
	}
	for _, c := range o.prefAdd {
		if _, err := scheduler.ParsePreference(c); err != nil {
			return fmt.Errorf("--placement-pref-add: %w", err)
		}
		p.Preferences = append(p.Preferences, c)
	}
	if changed("replicas-max-per-node") {
		n, err := parseCount("replicas-max-per-node", o.maxPerNode)
		if err != nil {
			return err
		}
		p.MaxReplicasPerNode = n
	}
	return nil
}

// sameExpr compares placement expressions ignoring spaces.
func sameExpr(a, b string) bool {
	return strings.ReplaceAll(a, " ", "") == strings.ReplaceAll(b, " ", "")
}

func applyCounts(spec *minkepb.ServiceSpec, o serviceUpdateOptions, changed func(string) bool) error {
	if changed("replicas") {
		n, err := parseCount("replicas", o.replicas)
		if err != nil {
			return err
		}
		switch m := spec.GetMode().(type) {
		case *minkepb.ServiceSpec_Replicated:
			m.Replicated.Replicas = n
		case *minkepb.ServiceSpec_ReplicatedJob:
			if n == 0 {
				return fmt.Errorf("invalid --replicas 0 for a replicated job: it must complete at least 1 task")
			}
			m.ReplicatedJob.TotalCompletions = n
		case nil:
		default:
			return fmt.Errorf("--replicas does not apply to service %s: it is %s", spec.GetName(), serviceMode(spec))
		}
	}
	if changed("max-concurrent") {
		n, err := parseCount("max-concurrent", o.maxConcurrent)
		if err != nil {
			return err
		}
		switch m := spec.GetMode().(type) {
		case *minkepb.ServiceSpec_ReplicatedJob:
			m.ReplicatedJob.MaxConcurrent = n
		case nil:
		default:
			return fmt.Errorf("--max-concurrent applies only to replicated jobs; service %s is %s", spec.GetName(), serviceMode(spec))
		}
	}
	return nil
}

// updateStateName renders an update state as docker does: rollback_started.
func updateStateName(s minkepb.UpdateStatus_State) string {
	return strings.ToLower(s.String())
}

func newServiceRollbackCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Return a service to its previous spec",
	}
	return followedServiceCmd(a, cmd, "rollback", func(ctx context.Context, u updateAPI, name string) (*minkepb.Service, error) {
		return u.RollbackService(ctx, name)
	})
}

func newServiceRebalanceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rebalance SERVICE",
		Short: "Spread a replicated service's tasks evenly over the eligible nodes again",
		Long: `Spread a replicated service's tasks evenly again, for example after nodes
joined. Tasks move start-first (the replacement runs before the old task
stops) at the pace of the service's update config, so the service never runs
fewer tasks than before.`,
	}
	return followedServiceCmd(a, cmd, "rebalance", func(ctx context.Context, u updateAPI, name string) (*minkepb.Service, error) {
		return u.RebalanceService(ctx, name)
	})
}

// followedServiceCmd completes cmd (Use, Short and Long set) as a command
// that takes one service, asks call to change it, prints its name and, unless
// --detach is given, follows the resulting update to its end.
func followedServiceCmd(a *app, cmd *cobra.Command, what string,
	call func(ctx context.Context, u updateAPI, name string) (*minkepb.Service, error)) *cobra.Command {
	var detach bool
	cmd.Args = exactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		return a.withAPI(ctx, func(api controlAPI) error {
			u, err := updater(api)
			if err != nil {
				return err
			}
			svc, err := call(ctx, u, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, svc.GetSpec().GetName())
			if detach {
				return nil
			}
			return followUpdate(ctx, api, a.stderr, svc)
		})
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "exit once the "+what+" is accepted instead of following it")
	return cmd
}

func newClusterUpdateCmd(a *app) *cobra.Command {
	var limit string
	cmd := &cobra.Command{
		Use:   "update --task-history-limit N",
		Short: "Change cluster-wide settings",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("task-history-limit") {
				return fmt.Errorf("nothing to update: give --task-history-limit N")
			}
			n, err := strconv.ParseInt(strings.TrimSpace(limit), 10, 64)
			if err != nil {
				return fmt.Errorf("invalid --task-history-limit %q: want an integer (ended tasks kept per slot; negative keeps all)", limit)
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				u, err := updater(api)
				if err != nil {
					return err
				}
				if _, err := u.SetTaskHistoryLimit(cmd.Context(), n); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "task history limit set to %d\n", n)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&limit, "task-history-limit", "", "ended tasks kept per slot (default 5; negative keeps all)")
	return cmd
}

// replicasColumn is `service ls`'s REPLICAS: running/desired, and for
// jobs the completions, as docker shows them ("1/2 (3/5 completed)").
func replicasColumn(s *minkepb.Service, c *minkepb.ReplicaCounts) string {
	desired := s.GetSpec().GetReplicated().GetReplicas()
	if c != nil {
		desired = c.GetDesired()
	}
	out := fmt.Sprintf("%d/%d", c.GetRunning(), desired)
	switch s.GetSpec().GetMode().(type) {
	case *minkepb.ServiceSpec_ReplicatedJob, *minkepb.ServiceSpec_GlobalJob:
		out += fmt.Sprintf(" (%d/%d completed)", c.GetCompleted(), c.GetTotalCompletions())
	}
	return out
}
