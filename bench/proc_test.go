package main

// Tests of the /proc readers of proc.go.

import (
	"os"
	"testing"
)

func TestCPUReadingOfThisProcess(t *testing.T) {
	// Spend some CPU so that the scheduler has counted some.
	sum := 0
	for i := range 20_000_000 {
		sum += i % 7
	}
	ticks, schedNs, err := cpuReading(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ticks < 0 || schedNs <= 0 {
		t.Fatalf("ticks %d, schedstat %d ns (after a sum of %d): want counters of a process that ran", ticks, schedNs, sum)
	}
	if _, _, err := cpuReading(-1); err == nil {
		t.Fatal("a reading of pid -1 succeeded")
	}
}
