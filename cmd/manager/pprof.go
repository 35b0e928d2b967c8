package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// pprofEnv names the loopback HOST:PORT on which the manager serves Go's
// profiler (/debug/pprof/), for profiling benchmarks such as
// test/schedbench. Unset (the default), nothing is served.
const pprofEnv = "MINKE_PPROF_ADDR"

// servePprof serves the profiler when pprofEnv is set. Only loopback
// addresses are accepted: profiles expose the process's memory.
func servePprof(log *slog.Logger) {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Warn("not serving the profiler: "+pprofEnv+" must be a loopback HOST:PORT", "value", addr)
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
