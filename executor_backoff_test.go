package main

import (
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
)

// A minute and more of failed subscriptions once doubled the backoff past
// int64 and made rand.N panic on the negative duration.
func TestSubscribeBackoffStaysWithinItsLimitForever(t *testing.T) {
	d := &driver{mesosCfg: config.Config{SubscriptionBackoffMax: 2 * time.Second}}
	backoff := minSubscribeBackoff
	for i := 0; i < 200; i++ {
		wait := d.nextBackoff(&backoff)
		if wait < 0 || wait > 2*time.Second {
			t.Fatalf("attempt %d: backoff %s outside [0, 2s]", i, wait)
		}
		if backoff <= 0 {
			t.Fatalf("attempt %d: the next backoff overflowed to %s", i, backoff)
		}
	}
}
