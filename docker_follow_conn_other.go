//go:build !linux

package main

import (
	"net"
)

func dialFollowConn(string) (net.Conn, error) { return nil, errFollowConnUnsupported }
