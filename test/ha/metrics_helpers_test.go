//go:build linux

package ha

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/internal/netharness"
	"github.com/minke-io/minke/pkg/client"
)

// metricsPort is where every test manager serves /metrics (--metrics-addr
// on its host's address; reachable only from inside the hosts).
const metricsPort = "9100"

func dial(sock string) *client.Client {
	cl, err := client.Dial(context.Background(), "unix://"+sock)
	if err != nil {
		panic(err) // only a malformed address fails
	}
	return cl
}

// scrape fetches http://addr/metrics from inside host h's namespace and
// returns the samples by series (name plus labels as printed).
func scrape(h *netharness.Host, addr string) (map[string]float64, error) {
	hc := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				return h.Dial(ctx, network, a)
			},
			DisableKeepAlives: true,
		},
	}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s/metrics: %s: %s", addr, resp.Status, b)
	}
	return clustertest.ParseMetrics(resp.Body)
}

// metric reads one series of m's metrics.
func (c *cluster) metric(m *mgr, series string) (float64, error) {
	ms, err := scrape(m.host, net.JoinHostPort(m.ip(), metricsPort))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.name(), err)
	}
	v, ok := ms[series]
	if !ok {
		return 0, fmt.Errorf("%s: no %s in its metrics", m.name(), series)
	}
	return v, nil
}
