package main

// docker_frames.go splits the multiplexed stream of a non-TTY container's
// followed output into its stdout and stderr records.
//
// The format is Docker's (each frame an 8-byte header: the stream, three
// zero bytes, the payload's size as a big-endian uint32; then the
// payload). moby's stdcopy.StdCopy, which go-dockerclient uses, moves its
// whole 32 KiB buffer to the front after every frame it writes; a follow
// carries one frame per line of the container's output, so at 10 MB/s of
// 100-byte lines that is 3 GB/s of copying, a quarter of what following
// cost the executor. frameSplitter hands each frame found whole in what it
// is given straight to its writer, and copies only a frame cut between two
// reads. Its callers see what StdCopy gave them: one Write per frame, stdin
// frames as stdout, a frame Docker reports an error in as that error, and
// a frame cut by the end of the stream not at all.

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	frameHeaderLen = 8
	// maxFrameSize bounds the one frame held at a time. Docker's log
	// records are at most 16 KiB (longer lines are split into several);
	// this is only a guard against a corrupt size.
	maxFrameSize = 64 << 20
)

// frameSplitter is an io.Writer of a multiplexed stream.
type frameSplitter struct {
	stdout, stderr io.Writer

	header  [frameHeaderLen]byte
	headerN int
	// frame gathers a frame cut between two Writes; need is how much of
	// its payload is still to come.
	frame []byte
	need  int
}

func newFrameSplitter(stdout, stderr io.Writer) *frameSplitter {
	return &frameSplitter{stdout: stdout, stderr: stderr}
}

func (s *frameSplitter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if s.need > 0 {
			n := min(s.need, len(p))
			s.frame = append(s.frame, p[:n]...)
			s.need -= n
			p = p[n:]
			if s.need > 0 {
				break
			}
			if err := s.deliver(s.header[0], s.frame); err != nil {
				return total - len(p), err
			}
			s.frame = s.frame[:0]
			continue
		}
		var header []byte
		if s.headerN == 0 && len(p) >= frameHeaderLen {
			header, p = p[:frameHeaderLen], p[frameHeaderLen:]
			copy(s.header[:], header)
		} else {
			n := copy(s.header[s.headerN:], p)
			s.headerN += n
			p = p[n:]
			if s.headerN < frameHeaderLen {
				break
			}
			s.headerN = 0
			header = s.header[:]
		}
		size := int(binary.BigEndian.Uint32(header[4:frameHeaderLen]))
		if size > maxFrameSize {
			return total - len(p), fmt.Errorf("a frame of %d bytes in the container's output stream (at most %d expected)", size, maxFrameSize)
		}
		if len(p) >= size {
			// Whole here: no copy.
			if err := s.deliver(header[0], p[:size]); err != nil {
				return total - len(p), err
			}
			p = p[size:]
			continue
		}
		s.frame = append(s.frame[:0], p...)
		s.need = size - len(p)
		p = nil
	}
	return total, nil
}

// deliver writes one frame's payload to the writer of its stream.
func (s *frameSplitter) deliver(stream byte, payload []byte) error {
	var out io.Writer
	switch stream {
	case 0, 1: // stdin frames go to stdout, as StdCopy does
		out = s.stdout
	case 2:
		out = s.stderr
	case 3:
		return fmt.Errorf("error from daemon in stream: %s", payload)
	default:
		return fmt.Errorf("unrecognized stream: %d", stream)
	}
	n, err := out.Write(payload)
	if err != nil {
		return err
	}
	if n != len(payload) {
		return io.ErrShortWrite
	}
	return nil
}
