//go:build !linux

package testutil

import (
	"net"
	"testing"
)

// RefusedAddr is a TCP address on 127.0.0.1 on which nothing listens. Here
// it is a closed listener's, which another process may take meanwhile.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	listener.Close()
	return addr
}
