package main

import (
	"net"
	"testing"
)

// On Linux a unix socket is dialed as a followConn, outside the poller.
func TestFollowDialerDialsAFollowConn(t *testing.T) {
	path := listenUnix(t, func(net.Conn) {})
	conn, err := followDialer{next: &net.Dialer{}}.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buffered, ok := conn.(*bufferedConn)
	if !ok {
		t.Fatalf("dialed %T, want a bufferedConn", conn)
	}
	if _, ok := buffered.Conn.(*followConn); !ok {
		t.Fatalf("a unix socket was dialed as %T, not a followConn", buffered.Conn)
	}
}
