package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// healthOptions are the healthcheck flags of `service create`, as docker's.
type healthOptions struct {
	cmd, interval, timeout, startPeriod, retries string
	none                                         bool
}

func (h *healthOptions) register(f *pflag.FlagSet) {
	f.StringVar(&h.cmd, "health-cmd", "", "command run inside the container to check its health (through /bin/sh -c)")
	f.StringVar(&h.interval, "health-interval", "", "time between health checks, e.g. 30s (default 30s)")
	f.StringVar(&h.timeout, "health-timeout", "", "longest a health check may run, e.g. 30s (default 30s)")
	f.StringVar(&h.startPeriod, "health-start-period", "", "time after start when failed checks do not count, e.g. 1m (default 0s)")
	f.StringVar(&h.retries, "health-retries", "", "failed checks in a row that make the container unhealthy (default 3)")
	f.BoolVar(&h.none, "no-healthcheck", false, "disable the image's HEALTHCHECK")
}

// apply sets c.Healthcheck from the flags: nothing given keeps the image's
// check; timings without --health-cmd change the image's check's timings.
func (h *healthOptions) apply(c *minkepb.ContainerSpec) error {
	given := h.cmd != "" || h.interval != "" || h.timeout != "" || h.startPeriod != "" || h.retries != ""
	if h.none {
		if given {
			return fmt.Errorf("--no-healthcheck conflicts with --health-* options")
		}
		c.Healthcheck = &minkepb.HealthConfig{Test: []string{"NONE"}}
		return nil
	}
	if !given {
		return nil
	}
	hc := &minkepb.HealthConfig{}
	if h.cmd != "" {
		if strings.TrimSpace(h.cmd) == "" {
			return fmt.Errorf("invalid --health-cmd %q: empty command", h.cmd)
		}
		hc.Test = []string{"CMD-SHELL", h.cmd}
	}
	for _, d := range []struct {
		flag, v string
		dst     **durationpb.Duration
	}{
		{"health-interval", h.interval, &hc.Interval},
		{"health-timeout", h.timeout, &hc.Timeout},
		{"health-start-period", h.startPeriod, &hc.StartPeriod},
	} {
		if d.v == "" {
			continue
		}
		v, err := parseDuration(d.flag, d.v)
		if err != nil {
			return err
		}
		// Docker's rule: 0 means the default, anything else at least 1ms.
		if v != 0 && v < time.Millisecond {
			return fmt.Errorf("invalid --%s %q: want 0 (the default) or at least 1ms", d.flag, d.v)
		}
		*d.dst = durationpb.New(v)
	}
	if h.retries != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(h.retries), 10, 32)
		if err != nil {
			return fmt.Errorf("invalid --health-retries %q: want a non-negative integer", h.retries)
		}
		hc.Retries = uint32(n)
	}
	c.Healthcheck = hc
	return nil
}
