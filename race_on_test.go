//go:build race

package main

// raceEnabled makes the end-to-end tests build the executor with the race
// detector too, so races in the real binary fail the run.
const raceEnabled = true
