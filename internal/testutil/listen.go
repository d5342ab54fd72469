package testutil

import (
	"fmt"
	"net"
	"time"
)

// RelistenTimeout bounds how long Relisten keeps trying.
const RelistenTimeout = 2 * time.Second

// relistenInterval is the pause between Relisten's attempts.
const relistenInterval = 10 * time.Millisecond

// Listen listens on a free TCP port of 127.0.0.1, as httptest does: the
// test servers (vaulttest, registrytest, mesostest) start this way.
func Listen() (net.Listener, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	return listener, nil
}

// Relisten listens on addr again, for a server that simulates going down
// and coming back on the same port. The port was the server's a moment ago,
// so it is normally free at once; the retries, for up to RelistenTimeout,
// cover a slow release.
func Relisten(addr string) (net.Listener, error) {
	deadline := time.Now().Add(RelistenTimeout)
	for {
		listener, err := net.Listen("tcp", addr)
		if err == nil {
			return listener, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listen again on %s: %w", addr, err)
		}
		time.Sleep(relistenInterval)
	}
}
