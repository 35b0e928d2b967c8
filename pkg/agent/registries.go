package agent

import (
	"net/http"
	"sync"

	"github.com/minke-io/minke/pkg/registry/tlsclient"
)

// clusterRegistryUser is an Executor that pulls images pushed to the
// cluster from the managers' registries (the real runtime does).
type clusterRegistryUser interface {
	UseClusterRegistries(hosts []string, tr http.RoundTripper)
}

// registryClient is the node's transport to the cluster's registries,
// made once: mutual TLS with the node's certificate (the current one, as
// it renews), accepting only manager certificates from the cluster's roots.
type registryClient struct {
	once sync.Once
	tr   http.RoundTripper
}

// useRegistries passes the session's list of the cluster's registries to
// the runtime, before the assignments that may name them are reconciled.
func (a *Agent) useRegistries(hosts []string) {
	ru, ok := a.rt.(clusterRegistryUser)
	if !ok || a.id == nil {
		return
	}
	a.registries.once.Do(func() { a.registries.tr = tlsclient.TransportFor(a.id) })
	ru.UseClusterRegistries(hosts, a.registries.tr)
}
