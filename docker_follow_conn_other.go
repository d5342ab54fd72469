//go:build !linux

package main

import (
	"errors"
	"net"
)

// errFollowConnUnsupported: follow connections are dialed through the
// ordinary dialer on this platform.
var errFollowConnUnsupported = errors.New("follow connections outside the poller are not supported here")

func dialFollowConn(string) (net.Conn, error) { return nil, errFollowConnUnsupported }
