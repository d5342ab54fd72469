//go:build benchpprof

package main

// Profiling hook for the scenario benchmark, compiled in only with
// `-tags benchpprof` (go run ./bench -tags benchpprof -profile DIR): when
// SIDECAR_EXECUTOR_PPROF_ADDR is set, the executor serves net/http/pprof
// there and writes the address it bound to $MESOS_SANDBOX/pprof.addr.
// Normal builds contain none of this.

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
)

func init() {
	addr := os.Getenv("SIDECAR_EXECUTOR_PPROF_ADDR")
	if addr == "" {
		return
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	if sandbox := os.Getenv("MESOS_SANDBOX"); sandbox != "" {
		_ = os.WriteFile(filepath.Join(sandbox, "pprof.addr"), []byte(listener.Addr().String()), 0o644)
	}
	go func() { _ = http.Serve(listener, nil) }()
}
