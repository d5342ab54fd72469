package main

// Where the time of a path goes: the executor's Docker calls, timed by the
// tracing proxy, laid out from the start of the path.

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// timelineEntry is one call in a path, relative to the path's start.
type timelineEntry struct {
	Key      string // "METHOD path #n"
	StartOff time.Duration
	Duration time.Duration
}

type timeline struct {
	Total   time.Duration
	Entries []timelineEntry
}

type breakdowns struct {
	mu    sync.Mutex
	paths map[string][]timeline
	order []string
}

func newBreakdowns() *breakdowns { return &breakdowns{paths: map[string][]timeline{}} }

// add records the Docker calls of one path between from (the event that
// starts it) and to (the update that ends it). A wait that ends inside the
// window (the container's exit reaching the executor) is included with its
// end; other calls are included when they start inside the window.
//
// With containers given, only calls naming one of them (its ID or name)
// count: several executors may be talking to Docker at once.
func (b *breakdowns) add(path string, from, to time.Time, proxy *dockerProxy, containers ...string) {
	var tl timeline
	tl.Total = to.Sub(from)
	seen := map[string]int{}
	for _, c := range proxy.calls() {
		if len(containers) > 0 && !slices.Contains(containers, c.Container) {
			continue
		}
		isWait := c.Method == "POST" && len(c.Path) > 5 && c.Path[len(c.Path)-5:] == "/wait"
		switch {
		case isWait && !c.End.Before(from) && !c.End.After(to):
			tl.Entries = append(tl.Entries, timelineEntry{Key: "wait answered (container exited)", StartOff: c.End.Sub(from)})
		case isWait:
		case !c.Start.Before(from.Add(-timestampSlack)) && !c.Start.After(to):
			// (The agent stamps an event after flushing it, so the
			// executor's first call may start a little before the stamp.)
			key := c.Method + " " + c.Path
			seen[key]++
			tl.Entries = append(tl.Entries, timelineEntry{Key: fmt.Sprintf("%s #%d", key, seen[key]), StartOff: c.Start.Sub(from), Duration: c.End.Sub(c.Start)})
		}
	}
	sort.SliceStable(tl.Entries, func(i, j int) bool { return tl.Entries[i].StartOff < tl.Entries[j].StartOff })
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.paths[path]; !ok {
		b.order = append(b.order, path)
	}
	b.paths[path] = append(b.paths[path], tl)
}

// breakdownRow is the median of one call over the runs of a path.
type breakdownRow struct {
	Key         string
	Runs        int
	StartMedian float64 // ms from the path's start
	DurMedian   float64 // ms
	StartMax    float64 // the slowest run's, for the tail
	DurMax      float64
}

// summarizePath merges the runs of a path by call key, in the order of the
// median start.
func (b *breakdowns) summarizePath(path string) (rows []breakdownRow, total summary) {
	runs := b.paths[path]
	starts := map[string][]float64{}
	durs := map[string][]float64{}
	var totals []float64
	for _, tl := range runs {
		totals = append(totals, ms(tl.Total))
		for _, e := range tl.Entries {
			starts[e.Key] = append(starts[e.Key], ms(e.StartOff))
			durs[e.Key] = append(durs[e.Key], ms(e.Duration))
		}
	}
	for key, s := range starts {
		rows = append(rows, breakdownRow{Key: key, Runs: len(s), StartMedian: median(s), DurMedian: median(durs[key]), StartMax: slices.Max(s), DurMax: slices.Max(durs[key])})
	}
	slices.SortFunc(rows, func(a, b breakdownRow) int {
		switch {
		case a.StartMedian < b.StartMedian:
			return -1
		case a.StartMedian > b.StartMedian:
			return 1
		}
		return 0
	})
	return rows, summarize(totals)
}
