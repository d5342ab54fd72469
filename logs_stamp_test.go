package main

import (
	"testing"
	"time"
)

// dockerStampLayout is the layout Docker writes record stamps in.
const dockerStampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// TestStampReaderMatchesTimeParse reads a run of stamps as a followed
// stream carries them (same second, next second, other layouts, broken
// ones) and checks each answer against time.Parse's.
func TestStampReaderMatchesTimeParse(t *testing.T) {
	base := time.Date(2026, 11, 28, 2, 7, 1, 0, time.UTC)
	stamps := []string{
		base.Format(dockerStampLayout),
		base.Add(1).Format(dockerStampLayout),
		base.Add(999_999_999).Format(dockerStampLayout),
		base.Add(time.Second).Format(dockerStampLayout),
		base.Add(time.Second + 123_456_789).Format(dockerStampLayout),
		base.Add(time.Second + 120_000_000).Format(time.RFC3339Nano), // trailing zeros trimmed
		base.Add(time.Second + 5).In(time.FixedZone("", 3600)).Format(dockerStampLayout),
		base.Add(time.Second + 6).Format(dockerStampLayout),
		"2026-11-28T02:07:02.12345678xZ",  // the cached second, a broken fraction
		"2026-11-28T02:07:02.1234567890Z", // one digit too many
		"2026-11-28T02:07:02.123456789z",
		"2026-02-30T02:07:02.123456789Z", // no such day
		"2026-11-28T24:00:00.000000000Z",
		"2026-11-28T02:07:60.000000000Z",
		"2026-11-28T02:07:02 123456789Z",
		base.Add(time.Second + 7).Format(dockerStampLayout),
		// json-file's stamps: the fraction's trailing zeros cut.
		base.Add(2*time.Second + 100_000_000).Format(time.RFC3339Nano),
		base.Add(2*time.Second + 120_000_000).Format(time.RFC3339Nano),
		base.Add(2*time.Second + 123_456_780).Format(time.RFC3339Nano),
		base.Add(2 * time.Second).Format(time.RFC3339Nano), // no fraction at all
		"2026-11-28T02:07:03.Z",
		"2026-11-28T02:07:03.1x3Z",
		"",
		"garbage",
	}
	var r stampReader
	for _, stamp := range stamps {
		got, gotErr := r.parse([]byte(stamp))
		want, wantErr := time.Parse(time.RFC3339Nano, stamp)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, time.Parse's %v", stamp, gotErr, wantErr)
		}
		if !got.Equal(want) {
			t.Fatalf("%q: %s, time.Parse gives %s", stamp, got, want)
		}
	}
}

// TestStampReaderReadsTheFractionOfAKnownSecond: once a second is known,
// a stamp in it is read without time.Parse; a stamp of another second is
// parsed in full and becomes the known one.
func TestStampReaderReadsTheFractionOfAKnownSecond(t *testing.T) {
	var r stampReader
	first := time.Date(2026, 11, 28, 2, 7, 1, 500, time.UTC)
	if _, err := r.parse([]byte(first.Format(dockerStampLayout))); err != nil {
		t.Fatal(err)
	}
	if !r.hasSecond || r.unix != first.Unix() {
		t.Fatalf("after a fixed-layout stamp the known second is %d (set: %v), want %d", r.unix, r.hasSecond, first.Unix())
	}
	// The known second's value is what a stamp in it is read with: a
	// wrong one shows in the answer, so the fast path is what ran.
	r.unix++
	got, err := r.parse([]byte(first.Add(7).Format(dockerStampLayout)))
	if err != nil || got.Unix() != first.Unix()+1 || got.Nanosecond() != 507 {
		t.Fatalf("a stamp in the known second read as %s, %v: not from the known second", got, err)
	}
	next := first.Add(time.Second)
	if got, err := r.parse([]byte(next.Format(dockerStampLayout))); err != nil || !got.Equal(next) {
		t.Fatalf("the next second read as %s, %v; want %s", got, err, next)
	}
	if r.unix != next.Unix() {
		t.Fatalf("the known second is %d after the next one, want %d", r.unix, next.Unix())
	}
}

// FuzzStampReader: whatever two stamps arrive in a row, the second is read
// as time.Parse reads it.
func FuzzStampReader(f *testing.F) {
	f.Add("2026-11-28T02:07:01.000000500Z", "2026-11-28T02:07:01.000000507Z")
	f.Add("2026-11-28T02:07:01.000000500Z", "2026-11-28T02:07:01.0000005a7Z")
	f.Add("2026-11-28T02:07:01.000000500Z", "2026-11-28T02:07:01.5+01:00")
	f.Add("2026-11-28T23:59:59.999999999Z", "2026-11-29T00:00:00.000000000Z")
	f.Add("2026-11-28T02:07:01.5Z", "2026-11-28T02:07:01.25Z")
	f.Fuzz(func(t *testing.T, first, second string) {
		var r stampReader
		r.parse([]byte(first))
		got, gotErr := r.parse([]byte(second))
		want, wantErr := time.Parse(time.RFC3339Nano, second)
		if (gotErr != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Fatalf("after %q, %q reads as %s (%v); time.Parse: %s (%v)", first, second, got, gotErr, want, wantErr)
		}
	})
}
