package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// ms converts a duration to float milliseconds, the unit of every sample.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median is the middle sample, or the mean of the two middle samples of an
// even count. It is NaN for no samples.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank percentile: the smallest sample that at
// least pct percent of the samples do not exceed (rank ceil(pct*n/100)).
// With fewer than 100 samples the 99th percentile is therefore the largest
// sample. It is NaN for no samples; pct must be in 1..100.
func percentile(xs []float64, pct int) float64 {
	if pct < 1 || pct > 100 {
		panic(fmt.Sprintf("percentile %d out of 1..100", pct))
	}
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := (pct*n + 99) / 100 // integer ceil(pct*n/100), no rounding error
	return s[rank-1]
}

// summary is what the report shows of a sample set.
type summary struct {
	N      int
	Median float64
	P99    float64
	Min    float64
	Max    float64
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{Median: math.NaN(), P99: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	return summary{N: len(xs), Median: median(xs), P99: percentile(xs, 99), Min: slices.Min(xs), Max: slices.Max(xs)}
}

// pairedDifferences returns a[i]-b[i]; the sets must be the same length.
func pairedDifferences(a, b []float64) []float64 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("paired sets of different lengths %d and %d", len(a), len(b)))
	}
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// ratios returns a[i]/b[i]; the sets must be the same length and b positive.
func ratios(a, b []float64) []float64 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("paired sets of different lengths %d and %d", len(a), len(b)))
	}
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

// checkSamples fails on a set that cannot be a real measurement: empty,
// not finite, or negative where only positive durations make sense.
func checkSamples(name string, xs []float64, want int) error {
	return checkSamplesFloor(name, xs, want, 0)
}

// checkSamplesFloor is checkSamples for a figure whose timestamps may err
// by up to -floor: samples down to floor are accepted.
func checkSamplesFloor(name string, xs []float64, want int, floor float64) error {
	if len(xs) != want {
		return fmt.Errorf("%s: %d samples, want %d", name, len(xs), want)
	}
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < floor {
			return fmt.Errorf("%s: sample %d is %v: the measurement is broken", name, i, x)
		}
	}
	return nil
}
