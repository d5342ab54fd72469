//go:build !linux

package vaulttest

import (
	"io"
	"net"
)

func listen(hostPort string) (net.Listener, error) { return net.Listen("tcp", hostPort) }

// reservePort reserves nothing here: while the server is down its port is
// free, and another process may take it.
func reservePort(string) (io.Closer, error) { return nopCloser{}, nil }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
