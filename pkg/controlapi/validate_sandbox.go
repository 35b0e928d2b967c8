package controlapi

import (
	"fmt"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// validateSandbox checks a task's sandbox options (mounts, ulimits, hosts,
// DNS, groups, pids limit) with the runtime's own rules, so that a spec a
// worker would refuse is refused at the API with the field named.
func validateSandbox(task *minkepb.TaskSpec) error {
	c := task.GetContainer()
	res := task.GetResources()
	if p := res.GetLimits().GetPids(); p < 0 {
		return fmt.Errorf("invalid limits pids %d: must be 0 (unlimited) or positive", p)
	}
	if p := res.GetReservations().GetPids(); p != 0 {
		return fmt.Errorf("invalid reservations pids %d: a pids count can only be a limit", p)
	}
	spec := runtime.ContainerSpec{
		ExtraHosts: c.GetHosts(),
		DNSServers: c.GetDnsServers(),
		DNSSearch:  c.GetDnsSearch(),
		DNSOptions: c.GetDnsOptions(),
		Groups:     c.GetGroups(),
		PidsLimit:  res.GetLimits().GetPids(),
	}
	for i, m := range c.GetMounts() {
		rm := runtime.Mount{
			Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadonly(),
			TmpfsSize: m.GetTmpfsSizeBytes(), TmpfsMode: m.GetTmpfsMode(), NoCopy: m.GetVolumeNocopy(),
		}
		if err := runtime.ValidateMount(rm); err != nil {
			return fmt.Errorf("invalid mounts[%d] (type=%s,source=%s,target=%s): %v", i, m.GetType(), m.GetSource(), m.GetTarget(), err)
		}
		spec.Mounts = append(spec.Mounts, rm)
	}
	for _, u := range c.GetUlimits() {
		spec.Ulimits = append(spec.Ulimits, runtime.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	if err := runtime.ValidateSandbox(spec); err != nil {
		return fmt.Errorf("invalid container spec: %s", strings.TrimPrefix(err.Error(), runtime.ErrInvalidSpec.Error()+": "))
	}
	return nil
}
