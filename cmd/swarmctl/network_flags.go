package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// networkOptions is `service create --network`.
type networkOptions struct {
	networks []string
}

func (o *networkOptions) register(f *pflag.FlagSet) {
	f.StringArrayVar(&o.networks, "network", nil,
		"attach the tasks to an overlay network: NAME, or name=NAME,alias=ALIAS (repeatable)")
}

// apply sets task.networks; the managers resolve names to IDs and refuse
// an unknown network or one given twice.
func (o *networkOptions) apply(task *minkepb.TaskSpec) error {
	for _, v := range o.networks {
		cfg, err := parseNetworkFlag("network", v)
		if err != nil {
			return err
		}
		task.Networks = append(task.Networks, cfg)
	}
	return nil
}

// networkUpdateOptions is `service update --network-add/--network-rm`.
// The stored spec names networks by ID, so resolve looks the given names
// up before the spec is changed.
type networkUpdateOptions struct {
	add, rm []string
	ids     map[string]string // a given name or ID → the network's ID
}

func (o *networkUpdateOptions) register(f *pflag.FlagSet) {
	f.StringArrayVar(&o.add, "network-add", nil, "attach to an overlay network: NAME, or name=NAME,alias=ALIAS (repeatable)")
	f.StringArrayVar(&o.rm, "network-rm", nil, "detach from an overlay network by name or ID (repeatable)")
}

// resolve finds the IDs of the networks the flags name; an unknown one
// fails before anything changes.
func (o *networkUpdateOptions) resolve(ctx context.Context, api controlAPI) error {
	if len(o.add) == 0 && len(o.rm) == 0 {
		return nil
	}
	nets, err := networker(api)
	if err != nil {
		return err
	}
	o.ids = map[string]string{}
	refs := slices.Clone(o.rm)
	for _, v := range o.add {
		cfg, err := parseNetworkFlag("network-add", v)
		if err != nil {
			return err
		}
		refs = append(refs, cfg.GetTarget())
	}
	for _, ref := range refs {
		n, _, err := nets.GetNetwork(ctx, ref)
		if status.Code(err) == codes.NotFound {
			return fmt.Errorf("network %q not found ('swarmctl network ls' lists them)", ref)
		}
		if err != nil {
			return err
		}
		o.ids[ref] = n.GetMeta().GetId()
	}
	return nil
}

// apply detaches (--network-rm) and then attaches (--network-add).
func (o *networkUpdateOptions) apply(task *minkepb.TaskSpec) error {
	id := func(ref string) string {
		if v, ok := o.ids[ref]; ok {
			return v
		}
		return ref
	}
	for _, ref := range o.rm {
		task.Networks = slices.DeleteFunc(task.Networks, func(c *minkepb.NetworkAttachmentConfig) bool {
			return c.GetTarget() == id(ref) || c.GetTarget() == ref
		})
	}
	for _, v := range o.add {
		cfg, err := parseNetworkFlag("network-add", v)
		if err != nil {
			return err
		}
		ref := cfg.GetTarget()
		cfg.Target = id(ref)
		if slices.ContainsFunc(task.Networks, func(c *minkepb.NetworkAttachmentConfig) bool { return c.GetTarget() == cfg.GetTarget() }) {
			return fmt.Errorf("invalid --network-add %q: the service is already attached to network %s", v, ref)
		}
		task.Networks = append(task.Networks, cfg)
	}
	return nil
}
