package testutil

import (
	"net"
	"strings"
	"testing"
)

func TestListenIsOnLoopback(t *testing.T) {
	listener, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	host, _, err := net.SplitHostPort(listener.Addr().String())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Listen is on %s, want 127.0.0.1", listener.Addr())
	}
}

func TestRelistenTakesTheSamePortBack(t *testing.T) {
	listener, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	listener.Close()
	again, err := Relisten(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Addr().String() != addr {
		t.Fatalf("Relisten is on %s, want %s", again.Addr(), addr)
	}
}

func TestRelistenGivesUpOnABusyPort(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for RelistenTimeout")
	}
	listener, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	_, err = Relisten(listener.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listen again on "+listener.Addr().String()) {
		t.Fatalf("Relisten on a busy port: %v, want an error naming the address", err)
	}
}
