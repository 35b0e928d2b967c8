package agent

import (
	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// sandboxSpec maps the task's sandbox options (seccomp, read-only root,
// mounts, /etc files, ulimits, groups, pids limit, CPU weight) onto spec.
func sandboxSpec(spec *runtime.ContainerSpec, t *minkepb.Task) {
	c := t.GetSpec().GetContainer()
	spec.SeccompUnconfined = c.GetSeccompUnconfined()
	spec.ReadonlyRootfs = c.GetReadOnly()
	for _, m := range c.GetMounts() {
		spec.Mounts = append(spec.Mounts, runtime.Mount{
			Type:      m.GetType(),
			Source:    m.GetSource(),
			Target:    m.GetTarget(),
			ReadOnly:  m.GetReadonly(),
			TmpfsSize: m.GetTmpfsSizeBytes(),
			TmpfsMode: m.GetTmpfsMode(),
			NoCopy:    m.GetVolumeNocopy(),
		})
	}
	spec.ExtraHosts = c.GetHosts()
	spec.DNSServers = c.GetDnsServers()
	spec.DNSSearch = c.GetDnsSearch()
	spec.DNSOptions = c.GetDnsOptions()
	for _, u := range c.GetUlimits() {
		spec.Ulimits = append(spec.Ulimits, runtime.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	spec.Groups = c.GetGroups()
	res := t.GetSpec().GetResources()
	spec.PidsLimit = res.GetLimits().GetPids()
	// As swarm does: a CPU reservation becomes a relative weight, so that
	// under contention tasks get CPU in proportion to what they reserved.
	if n := res.GetReservations().GetNanoCpus(); n > 0 {
		spec.CPUShares = min(max(n*1024/1e9, 2), 262144)
	}
}
