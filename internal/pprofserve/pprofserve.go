// Package pprofserve serves Go's profiler from the manager and worker
// binaries when an operator (or a benchmark such as test/schedbench) asks
// for it through the environment.
package pprofserve

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// Env names the loopback HOST:PORT on which a minke binary serves Go's
// profiler (/debug/pprof/). Unset (the default), nothing is served.
const Env = "MINKE_PPROF_ADDR"

// Serve serves the profiler when Env is set. Only loopback addresses are
// accepted: profiles expose the process's memory.
func Serve(log *slog.Logger) {
	addr := os.Getenv(Env)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Warn("not serving the profiler: "+Env+" must be a loopback HOST:PORT", "value", addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Warn("profiler stopped", "addr", addr, "err", err)
		}
	}()
}
