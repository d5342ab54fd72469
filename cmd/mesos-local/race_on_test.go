//go:build race

package main

// raceEnabled makes the end-to-end tests build mesos-local and the executor
// with the race detector too, so races in the real binaries fail the run.
const raceEnabled = true
