package main

import (
	"fmt"

	"github.com/spf13/pflag"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// processOptions are the `service create` flags about the container's
// process lifecycle: its stop signal and an init as pid 1.
type processOptions struct {
	stopSignal string
	init       bool
}

func (p *processOptions) register(f *pflag.FlagSet) {
	f.StringVar(&p.stopSignal, "stop-signal", "", "signal that stops the container, e.g. SIGQUIT (default: the image's STOPSIGNAL, else SIGTERM)")
	f.BoolVar(&p.init, "init", false, "run an init inside the container that forwards signals and reaps zombies")
}

func (p *processOptions) apply(c *minkepb.ContainerSpec) error {
	if p.stopSignal != "" {
		if _, err := runtime.ParseSignal(p.stopSignal); err != nil {
			return fmt.Errorf("invalid --stop-signal: %w", err)
		}
		c.StopSignal = p.stopSignal
	}
	c.Init = p.init
	return nil
}
