package main

import "testing"

// TestContainerNameOfABenchTask pins the name of one bench task: the
// scenario bench computes the executor's container names itself
// (bench/harness.go containerNameFor) and checks the same vector, so a
// change of the naming scheme fails here and reminds to change the bench.
func TestContainerNameOfABenchTask(t *testing.T) {
	const framework, task = "ae9002ae-cde7-43fb-8abd-9a1b8757f5c0-0000", "bench-0dd36acb-kill-3"
	if got, want := containerName(framework, task), "mesos-bench-0dd36acb-kill-3_6d8f0be089bf"; got != want {
		t.Fatalf("containerName = %q, want %q; update bench/harness.go containerNameFor too", got, want)
	}
}
