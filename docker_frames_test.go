package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
)

// writeRecorder records every Write as one record of its stream.
type writeRecorder struct {
	stream string
	log    *[]string
}

func (w writeRecorder) Write(p []byte) (int, error) {
	*w.log = append(*w.log, w.stream+":"+string(p))
	return len(p), nil
}

// frame encodes one frame of Docker's multiplexed stream.
func frame(stream byte, payload string) []byte {
	header := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	header[0] = stream
	binary.BigEndian.PutUint32(header[4:], uint32(len(payload)))
	return append(header, payload...)
}

// splitInto feeds data to a frameSplitter in pieces cut by cut, and
// returns the Writes it made and its error.
func splitInto(data []byte, cut func(rest int) int) ([]string, error) {
	var got []string
	s := newFrameSplitter(writeRecorder{"out", &got}, writeRecorder{"err", &got})
	for len(data) > 0 {
		n := min(cut(len(data)), len(data))
		if _, err := s.Write(data[:n]); err != nil {
			return got, err
		}
		data = data[n:]
	}
	return got, nil
}

// stdCopyWrites is what moby's StdCopy makes of the same stream.
func stdCopyWrites(data []byte) ([]string, error) {
	var got []string
	_, err := stdcopy.StdCopy(writeRecorder{"out", &got}, writeRecorder{"err", &got}, bytes.NewReader(data))
	return got, err
}

// Whatever the pieces the stream arrives in, the splitter writes what
// StdCopy writes: one Write per frame, in order, to the frame's stream,
// stdin frames to stdout, a frame cut by the end not at all.
func TestFrameSplitterWritesWhatStdCopyWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	for i := range 3000 {
		size := rng.IntN(300)
		switch i % 97 {
		case 0:
			size = 0
		case 1:
			size = 40<<10 + rng.IntN(1000) // larger than StdCopy's buffer
		}
		payload := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		stream = append(stream, frame([]byte{0, 1, 2}[rng.IntN(3)], fmt.Sprintf("%d:%s", i, payload))...)
	}
	want, err := stdCopyWrites(stream)
	if err != nil || len(want) != 3000 {
		t.Fatalf("StdCopy: %d writes, %v", len(want), err)
	}
	cuts := map[string]func(int) int{
		"one write":        func(rest int) int { return rest },
		"byte by byte":     func(int) int { return 1 },
		"within headers":   func(int) int { return 3 },
		"random pieces":    func(int) int { return 1 + rng.IntN(5000) },
		"32 KiB like Copy": func(int) int { return 32 << 10 },
	}
	for name, cut := range cuts {
		if name == "byte by byte" {
			// The whole stream byte by byte is slow under -race; its
			// first frames say the same.
			got, err := splitInto(stream[:200<<10], cut)
			wantPrefix, _ := stdCopyWrites(stream[:200<<10])
			if err != nil || !slices.Equal(got, wantPrefix) {
				t.Errorf("%s: %d writes (%v), StdCopy %d", name, len(got), err, len(wantPrefix))
			}
			continue
		}
		got, err := splitInto(stream, cut)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d writes differ from StdCopy's %d", name, len(got), len(want))
		}
	}
	// A stream cut inside a frame: only the whole frames are written.
	last := frame(1, "cut short")
	cutStream := append(slices.Clone(stream), last[:len(last)-3]...)
	got, err := splitInto(cutStream, func(int) int { return 4096 })
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("cut stream: %d writes (%v), want the %d whole frames", len(got), err, len(want))
	}
}

// A frame in which Docker reports an error ends the stream with that
// error, worded as StdCopy words it; an unknown stream is an error too.
func TestFrameSplitterErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
	}{
		{"daemon error", append(frame(1, "before\n"), frame(3, "log file rotated under the reader")...)},
		{"unknown stream", append(frame(2, "before\n"), frame(7, "x")...)},
	} {
		got, err := splitInto(tc.stream, func(int) int { return 5 })
		want, wantErr := stdCopyWrites(tc.stream)
		if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, StdCopy's %v", tc.name, err, wantErr)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: writes %q, StdCopy's %q", tc.name, got, want)
		}
	}
	huge := make([]byte, frameHeaderLen)
	huge[0] = 1
	binary.BigEndian.PutUint32(huge[4:], maxFrameSize+1)
	if _, err := splitInto(huge, func(rest int) int { return rest }); err == nil {
		t.Error("a frame larger than maxFrameSize was accepted")
	}
}

// A followed stream's frames, one per 100-byte line with Docker's
// timestamp, in the 32 KiB pieces io.Copy hands on: frameSplitter against
// moby's StdCopy on the same bytes.
func followedFrames() []byte {
	var stream []byte
	line := "2026-11-27T21:40:00.123456789Z " + string(bytes.Repeat([]byte{'x'}, 99)) + "\n"
	for len(stream) < 4<<20 {
		stream = append(stream, frame(1+byte(len(stream)%2), line)...)
	}
	return stream
}

func BenchmarkFrameSplitter(b *testing.B) {
	stream := followedFrames()
	discard := writeRecorderCount{}
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		s := newFrameSplitter(&discard, &discard)
		for data := stream; len(data) > 0; {
			n := min(32<<10, len(data))
			if _, err := s.Write(data[:n]); err != nil {
				b.Fatal(err)
			}
			data = data[n:]
		}
	}
}

func BenchmarkStdCopyFollowedFrames(b *testing.B) {
	stream := followedFrames()
	discard := writeRecorderCount{}
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, err := stdcopy.StdCopy(&discard, &discard, bytes.NewReader(stream)); err != nil {
			b.Fatal(err)
		}
	}
}

// writeRecorderCount counts Writes and drops the bytes.
type writeRecorderCount struct{ writes int }

func (w *writeRecorderCount) Write(p []byte) (int, error) {
	w.writes++
	return len(p), nil
}
