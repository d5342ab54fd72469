//go:build linux

package vaulttest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen listens on hostPort with SO_REUSEPORT, so that reservePort can
// bind the port before the listener closes, and a new listener can take it
// over before the reservation is released: the port is never free for
// another process to take while the server is down.
func listen(hostPort string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", hostPort)
}

// portReservation is a TCP socket bound to the server's port that does not
// listen: the kernel answers connections to the port with a reset
// (connection refused), and lets no other socket listen there (one that
// shares the port needs SO_REUSEPORT and this user's ID).
type portReservation struct{ fd int }

func reservePort(hostPort string) (io.Closer, error) {
	ap, err := netip.ParseAddrPort(hostPort)
	if err != nil {
		return nil, err
	}
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if ap.Addr().Is4() {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	// SO_REUSEPORT only, not SO_REUSEADDR: a socket with SO_REUSEADDR
	// would let others bind and listen on the port too.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("setsockopt: %w", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", hostPort, err)
	}
	return &portReservation{fd: fd}, nil
}

func (r *portReservation) Close() error { return syscall.Close(r.fd) }
