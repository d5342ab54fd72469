package testutil

// serve.go owns how the test servers serve HTTP on their listener.

import (
	"net"
	"net/http"
	"time"
)

// Serve serves handler on listener in the background, with the header
// timeout the test servers share. done is closed once serving ended, after
// srv.Close (Serve's ErrServerClosed is the expected end, not reported).
func Serve(listener net.Listener, handler http.Handler) (srv *http.Server, done <-chan struct{}) {
	srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(listener)
	}()
	return srv, served
}
