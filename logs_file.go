package main

// logs_file.go follows the container's output by reading Docker's
// json-file log on this host (the container's LogPath) instead of
// Docker's logs API. The API costs the reader a socket buffer per line
// (at 10 MB/s of 100-byte lines, about a tenth of a core before anything
// is done with them, BENCHMARKS.md); the file is read in large pieces,
// a few dozen times a second while the container writes and on inotify's
// word while it is quiet. Docker rotates the file by renaming it and
// creating a new one after closing the old: the old one is read to its
// end before the new one is opened, so a rotation loses nothing the API
// would have given. Anything this reader does not expect (a record it
// cannot read, a truncated one, a read error) hands the stream back to the
// logs API, which resumes from the last record delivered (logs.go).
//
// The path comes from Docker (inspect), never from the task, and is read
// only when Docker runs on this host (a unix socket) and logs the
// container with json-file. What the file holds is the container's
// output, hostile like the rest of it: records are bounded in size and
// decoded, never interpreted.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// logFileReadPause separates reads of a log that had something new:
	// the next read takes what the container wrote meanwhile in one go.
	// The file, unlike a socket, holds whatever accumulates.
	logFileReadPause = 25 * time.Millisecond
	// logFileBuffer is the read buffer; it grows for a longer record, up
	// to logFileMaxRecord (Docker splits lines at 16 KiB, which escaping
	// can make six times longer), and shrinks back afterwards.
	logFileBuffer    = 64 << 10
	logFileMaxRecord = 1 << 20
)

// errLogFileKicked ends a file follow that finish found stalled.
var errLogFileKicked = errors.New("the read of Docker's json-file log made no progress")

// logFileReader reads one container's json-file log and its successors.
type logFileReader struct {
	path   string
	f      *os.File
	info   fs.FileInfo
	offset int64
	buf    []byte
	held   int
	dec    jsonFileDecoder
}

// openLogFile opens the log at path: a regular file, not a link.
func openLogFile(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%s)", path, info.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// followFile reads the container's output from Docker's json-file log
// at path until the container has exited and the log is read to its end
// (nil), or o's context ends (its error). Any other error says why the
// file could not be followed: the caller goes on with the logs API.
func (o *outputStream) followFile(path string) error {
	watch, err := newDirWatch(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer watch.close()
	f, info, err := openLogFile(path)
	if err != nil {
		return err
	}
	r := &logFileReader{path: path, f: f, info: info, buf: make([]byte, logFileBuffer)}
	defer func() { r.f.Close() }()
	stop := make(chan struct{})
	o.mu.Lock()
	o.kickConn, o.kicked = closeOnce(stop), false
	o.mu.Unlock()
	o.logger.WithField("log_file", path).Info("reading the container's output from Docker's json-file log")
	pause := time.NewTimer(logFileReadPause)
	pause.Stop()
	defer pause.Stop()
	for {
		// A read that begins after the exit reads the whole rest: Docker
		// has closed the log by the time its wait reports the exit.
		exited := o.hasExited()
		got, err := r.readAvailable(o)
		if err != nil {
			return err
		}
		if exited {
			o.mu.Lock()
			o.received = true
			o.mu.Unlock()
			return nil
		}
		// While the container writes, read every logFileReadPause;
		// while it is quiet, when the directory changes.
		var wake <-chan struct{}
		var paused <-chan time.Time
		if got {
			pause.Reset(logFileReadPause)
			paused = pause.C
		} else {
			wake = watch.next()
		}
		select {
		case <-o.ctx.Done():
			return o.ctx.Err()
		case <-stop:
			return errLogFileKicked
		case <-o.exited:
		case <-wake:
			watch.woke()
		case <-paused:
		}
		pause.Stop()
	}
}

// closeOnce returns a function that closes ch the first time it is called
// (under outputStream.mu, as kick calls it).
func closeOnce(ch chan struct{}) func() {
	closed := false
	return func() {
		if !closed {
			closed = true
			close(ch)
		}
	}
}

// readAvailable reads and delivers what the log holds, following it to a
// successor that replaced it; it reports whether it read anything.
func (r *logFileReader) readAvailable(o *outputStream) (got bool, err error) {
	for {
		n, err := r.f.Read(r.buf[r.held:])
		if n > 0 {
			got = true
			r.offset += int64(n)
			r.held += n
			if err := r.deliver(o); err != nil {
				return got, err
			}
			continue
		}
		if err != nil && err != io.EOF {
			return got, fmt.Errorf("read %s: %w", r.path, err)
		}
		moved, err := r.atEnd()
		if err != nil || !moved {
			return got, err
		}
	}
}

// atEnd looks, at the end of the file, whether Docker replaced it
// (rotation: a new file at the path) or cut it (a rotation that keeps one
// file truncates it); moved says there is more to read.
func (r *logFileReader) atEnd() (moved bool, err error) {
	current, err := os.Lstat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed, or between the rename and the new file: an event
		// follows the new file.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if os.SameFile(current, r.info) {
		now, err := r.f.Stat()
		if err != nil {
			return false, err
		}
		if now.Size() >= r.offset {
			return false, nil
		}
		// Cut in place: what was written between the last read and the
		// cut is gone, as it is for Docker's own reader.
		if _, err := r.f.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		r.offset, r.held = 0, 0
		return true, nil
	}
	// Docker closed the old file before renaming it: it was read to its
	// end, and a record cut short there will never be finished.
	if r.held > 0 {
		return false, fmt.Errorf("%s ended inside a record (%d bytes) when it was rotated", r.path, r.held)
	}
	next := r.successor()
	f, info, err := openLogFile(next)
	if errors.Is(err, fs.ErrNotExist) {
		// Renamed again meanwhile: the next look finds it.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if os.SameFile(info, r.info) {
		f.Close()
		return false, nil
	}
	r.f.Close()
	r.f, r.info, r.offset = f, info, 0
	return true, nil
}

// maxRotatedLogs bounds the look for rotated logs (path.1, path.2, …).
const maxRotatedLogs = 1000

// successor names the log written after the one read so far. Docker keeps
// the rotated logs as path.1 (the newest), path.2, …: a reader more than
// one rotation behind finds its file at path.k and reads path.k-1 next. A
// file no longer there (rotated out, or compressed to path.k.gz) leaves the
// oldest uncompressed one, or path itself; what was between is lost, as it
// is for Docker's own reader. A rename under the look at worst repeats a
// file, whose records are then dropped as already delivered
// (recordParser.fileRecord).
func (r *logFileReader) successor() string {
	oldest := r.path
	for k := 1; k <= maxRotatedLogs; k++ {
		name := fmt.Sprintf("%s.%d", r.path, k)
		info, err := os.Lstat(name)
		if err != nil {
			break
		}
		if os.SameFile(info, r.info) {
			if k == 1 {
				return r.path
			}
			return fmt.Sprintf("%s.%d", r.path, k-1)
		}
		oldest = name
	}
	return oldest
}

// deliver hands the complete records held to the stream, under its lock
// once for all of them, and keeps a record still being written.
func (r *logFileReader) deliver(o *outputStream) error {
	data := r.buf[:r.held]
	o.mu.Lock()
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		rec, err := r.dec.decode(data[:i])
		if err != nil {
			o.mu.Unlock()
			return fmt.Errorf("%s at offset %d: %w", r.path, r.offset-int64(len(data)), err)
		}
		o.parsers[rec.stream].fileRecord(rec.time, rec.text)
		data = data[i+1:]
	}
	o.mu.Unlock()
	r.held = copy(r.buf, data)
	switch {
	case r.held == len(r.buf) && len(r.buf) >= logFileMaxRecord:
		return fmt.Errorf("%s holds a record longer than %d bytes", r.path, logFileMaxRecord)
	case r.held == len(r.buf):
		r.buf = append(r.buf, make([]byte, len(r.buf))...)
	case len(r.buf) > logFileBuffer && r.held < logFileBuffer:
		r.buf = append(make([]byte, 0, logFileBuffer), r.buf[:logFileBuffer]...)
	}
	return nil
}
