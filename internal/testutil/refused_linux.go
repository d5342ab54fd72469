//go:build linux

package testutil

import (
	"fmt"
	"syscall"
	"testing"
)

// RefusedAddr is a TCP address on 127.0.0.1 that refuses connections
// until the test ends: a socket bound to it that never listens holds the
// port, so the kernel answers every connection with a reset (connection
// refused) and no other process can bind the port and answer instead, as
// it could one that a closed listener left free.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// No SO_REUSEADDR: another socket could then bind the port too.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
