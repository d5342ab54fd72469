package main

import (
	"math"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1, 1}, 5.5},
	}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of no samples is not NaN")
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("median reordered its input: %v", in)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	seq := func(n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(n - i) // descending, so sorting matters
		}
		return xs
	}
	cases := []struct {
		n, pct int
		want   float64
	}{
		{1, 99, 1},
		{20, 99, 20}, // fewer than 100 samples: p99 is the maximum
		{20, 50, 10},
		{20, 95, 19},
		{100, 99, 99}, // exactly 99 of 100 do not exceed it
		{100, 100, 100},
		{101, 99, 100},
		{1000, 99, 990},
		{3, 1, 1},
	}
	for _, c := range cases {
		if got := percentile(seq(c.n), c.pct); got != c.want {
			t.Errorf("percentile(1..%d, %d) = %v, want %v", c.n, c.pct, got, c.want)
		}
	}
	if !math.IsNaN(percentile(nil, 99)) {
		t.Error("percentile of no samples is not NaN")
	}
	defer func() {
		if recover() == nil {
			t.Error("percentile(…, 0) did not panic")
		}
	}()
	percentile([]float64{1}, 0)
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{4, 2, 8, 6})
	if s.N != 4 || s.Median != 5 || s.P99 != 8 || s.Min != 2 || s.Max != 8 {
		t.Errorf("summarize = %+v", s)
	}
	if e := summarize(nil); e.N != 0 || !math.IsNaN(e.Median) || !math.IsNaN(e.P99) {
		t.Errorf("summarize(nil) = %+v", e)
	}
}

func TestPairedDifferencesAndRatios(t *testing.T) {
	d := pairedDifferences([]float64{10, 7}, []float64{4, 9})
	if d[0] != 6 || d[1] != -2 {
		t.Errorf("differences = %v", d)
	}
	r := ratios([]float64{10, 3}, []float64{4, 6})
	if r[0] != 2.5 || r[1] != 0.5 {
		t.Errorf("ratios = %v", r)
	}
	defer func() {
		if recover() == nil {
			t.Error("unequal lengths did not panic")
		}
	}()
	ratios([]float64{1}, nil)
}

func TestCheckSamples(t *testing.T) {
	if err := checkSamples("x", []float64{1, 0, 2}, 3); err != nil {
		t.Errorf("valid samples rejected: %v", err)
	}
	for _, bad := range [][]float64{{1, 2}, {1, -1, 2}, {1, math.NaN(), 2}, {math.Inf(1), 1, 1}} {
		if err := checkSamples("x", bad, 3); err == nil {
			t.Errorf("checkSamples(%v) accepted a broken set", bad)
		}
	}
	if err := checkSamplesFloor("x", []float64{1, -0.5, 2}, 3, -1); err != nil {
		t.Errorf("a sample within the floor rejected: %v", err)
	}
	if err := checkSamplesFloor("x", []float64{1, -1.5, 2}, 3, -1); err == nil {
		t.Error("a sample below the floor accepted")
	}
}

func TestMs(t *testing.T) {
	if got := ms(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("ms(1.5ms) = %v", got)
	}
}
