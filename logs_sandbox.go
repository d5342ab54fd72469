package main

// logs_sandbox.go owns the sandbox's stdout and stderr as the executor
// writes them: the container's lines (a containerLineSink fed by logs.go)
// and the executor's own log, serialised line by line through one writer
// per file, with the size cap and copytruncate rotation of the
// EXECUTOR_LOG_* settings (OutputSettings). The sandbox is writable by the
// container: rotation never follows a name it finds there and never writes
// outside the sandbox directory.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	log "github.com/sirupsen/logrus"
)

// OutputSettings cap the sandbox's stdout and stderr files. Both are the
// operator's: they bound what a task may leave on the host's disk.
type OutputSettings struct {
	// LogMaxSize is the size at which the sandbox's stdout or stderr is
	// rotated (like Mesos' logrotate logger's max_stdout_size); 0 turns
	// rotation off. Only a regular file opened by the agent's default
	// logger is rotated: a pipe belongs to the agent's logrotate logger.
	LogMaxSize byteSize `envconfig:"LOG_MAX_SIZE" default:"10MB"`
	// LogRotateKeep is how many rotated copies are kept next to each
	// file (stdout.1 the newest); 0 keeps none: rotation empties it.
	LogRotateKeep int `envconfig:"LOG_ROTATE_KEEP" default:"3"`
	// ReadDockerLogFile lets the executor read the container's output
	// from Docker's json-file log on this host instead of Docker's logs
	// API (logs_file.go): the same lines for a fraction of the CPU. It
	// reads a host file, so it is the operator's.
	ReadDockerLogFile bool `envconfig:"READ_DOCKER_LOG_FILE" default:"true"`
}

// Setting names as the operator writes them.
const (
	settingLogMaxSize    = envPrefix + "_LOG_MAX_SIZE"
	settingLogRotateKeep = envPrefix + "_LOG_ROTATE_KEEP"
	settingReadLogFile   = envPrefix + "_READ_DOCKER_LOG_FILE"
	// minLogMaxSize is the smallest cap, one memory page as for Mesos.
	minLogMaxSize = 4096
	// maxLogRotateKeep bounds the copies kept.
	maxLogRotateKeep = 100
)

// problems lists what is wrong with the settings, for Config.validate.
func (s OutputSettings) problems() []string {
	var problems []string
	if s.LogMaxSize != 0 && s.LogMaxSize < minLogMaxSize {
		problems = append(problems, fmt.Sprintf("%s must be 0 (no rotation) or at least %d bytes (got %d)", settingLogMaxSize, minLogMaxSize, s.LogMaxSize))
	}
	if s.LogRotateKeep < 0 || s.LogRotateKeep > maxLogRotateKeep {
		problems = append(problems, fmt.Sprintf("%s must be between 0 and %d (got %d)", settingLogRotateKeep, maxLogRotateKeep, s.LogRotateKeep))
	}
	return problems
}

// byteSize is a size in bytes written as a number with an optional unit:
// B, KB, MB, GB (powers of 1024, as Mesos' Bytes), case-insensitive.
type byteSize int64

// Decode implements envconfig.Decoder.
func (b *byteSize) Decode(value string) error {
	text := strings.ToUpper(strings.TrimSpace(value))
	unit := int64(1)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(text, u.suffix); ok {
			text, unit = strings.TrimSpace(rest), u.size
			break
		}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return fmt.Errorf("%q is not a size (a whole number of bytes, or with KB, MB or GB)", value)
	}
	*b = byteSize(n * unit)
	return nil
}

const (
	// sandboxBufferSize is the most container output gathered into one
	// write to the sandbox file. A write costs the kernel far more than
	// its bytes (the file's times and size change in the journal each
	// time): writing 10 MB/s in 64 KiB writes cost 2.5-3 % of a core
	// on the benchmark machine, in 256 KiB writes 1.6 %. The buffer grows
	// only as big as the output of one sandboxFlushDelay.
	sandboxBufferSize = 256 << 10
	// sandboxQuietBuffer: a buffer grown past this is let go when a
	// flush finds it less than an eighth full, so a stream that calmed
	// down after a burst holds no more than a quiet one.
	sandboxQuietBuffer = 64 << 10
	// sandboxFlushDelay is how long a container line may wait in the
	// buffer before it is written: the sandbox is tailed live.
	sandboxFlushDelay = 50 * time.Millisecond
)

// sandboxFile is the sandbox's stdout or stderr as the executor writes it.
// Container lines are buffered and written in batches; any other Write
// (the executor's log) first writes the batch, then itself, so lines keep
// their order and never interleave. Rotation happens before a write that
// would take the file past the cap.
type sandboxFile struct {
	mu sync.Mutex
	w  io.Writer
	// file is set when the file can be rotated.
	file     *os.File
	dir      string
	name     string
	maxSize  int64
	keep     int
	appendFD bool
	size     int64
	buf      []byte
	timer    *time.Timer
	// problem is a rotation failure to log once the lock is released
	// (the log may be this very file); reported keeps each kind of
	// problem to one log line.
	problem  string
	reported map[string]bool
	logger   *log.Entry
	werr     error
}

// openSandboxOutput wraps the executor's stdout and stderr, which the
// agent opened on the sandbox's stdout and stderr, and says for each
// whether it will be rotated.
func openSandboxOutput(stdout, stderr io.Writer, dir string, settings OutputSettings, logger *log.Entry) (*sandboxFile, *sandboxFile) {
	return newSandboxFile(stdout, dir, "stdout", settings, logger), newSandboxFile(stderr, dir, "stderr", settings, logger)
}

// newSandboxFile wraps w, the sandbox file dir/name when it is one.
func newSandboxFile(w io.Writer, dir, name string, settings OutputSettings, logger *log.Entry) *sandboxFile {
	f := &sandboxFile{w: w, dir: dir, name: name, reported: map[string]bool{}, logger: logger.WithField("file", name)}
	reason := f.enableRotation(settings)
	if reason != "" {
		f.logger.WithField("reason", reason).Info("the sandbox file is not rotated by the executor")
	} else {
		f.logger.WithFields(log.Fields{"max_size": f.maxSize, "keep": f.keep}).Info("the sandbox file is rotated by the executor")
	}
	return f
}

// enableRotation turns rotation on when w is the sandbox's own file, or
// says why not.
func (f *sandboxFile) enableRotation(settings OutputSettings) string {
	if settings.LogMaxSize == 0 {
		return settingLogMaxSize + " is 0"
	}
	file, ok := f.w.(*os.File)
	if !ok {
		return "not a file"
	}
	info, err := file.Stat()
	if err != nil {
		return "cannot stat it: " + err.Error()
	}
	switch mode := info.Mode(); {
	case mode&os.ModeNamedPipe != 0 || mode&os.ModeSocket != 0:
		return "it is a pipe: the agent's container logger rotates it"
	case !mode.IsRegular():
		return "not a regular file"
	}
	if f.dir == "" {
		return "MESOS_DIRECTORY is not set"
	}
	same, err := openSameFile(file, filepath.Join(f.dir, f.name))
	if err != nil {
		return err.Error()
	}
	same.Close()
	flags, err := fcntlFlags(file)
	if err != nil {
		return "cannot read its flags: " + err.Error()
	}
	f.file = file
	f.appendFD = flags&syscall.O_APPEND != 0
	f.maxSize = int64(settings.LogMaxSize)
	f.keep = settings.LogRotateKeep
	f.size = info.Size()
	return ""
}

func fcntlFlags(file *os.File) (int, error) {
	conn, err := file.SyscallConn()
	if err != nil {
		return 0, err
	}
	var flags int
	var ferr error
	if err := conn.Control(func(fd uintptr) {
		var errno syscall.Errno
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		flags, errno = int(r), e
		if errno != 0 {
			ferr = errno
		}
	}); err != nil {
		return 0, err
	}
	return flags, ferr
}

// openSameFile opens path for reading without following a symlink and
// checks that it is the file open as file; a FIFO planted there is not
// waited on.
func openSameFile(file *os.File, path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s without following links: %w", path, err)
	}
	named := os.NewFile(uintptr(fd), path)
	var want, got syscall.Stat_t
	if err := fstat(file, &want); err != nil {
		named.Close()
		return nil, err
	}
	if err := syscall.Fstat(fd, &got); err != nil {
		named.Close()
		return nil, err
	}
	if got.Mode&syscall.S_IFMT != syscall.S_IFREG || got.Dev != want.Dev || got.Ino != want.Ino {
		named.Close()
		return nil, fmt.Errorf("%s is not the file the executor writes to", path)
	}
	return named, nil
}

func fstat(file *os.File, st *syscall.Stat_t) error {
	conn, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := conn.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), st) }); err != nil {
		return err
	}
	return serr
}

// Write writes the executor's own output (its log), after the container
// lines waiting in the buffer.
func (f *sandboxFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.flushLocked()
	err := f.writeLocked(p)
	problem := f.takeProblem()
	f.mu.Unlock()
	f.report(problem)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeLine buffers one container line and its newline.
func (f *sandboxFile) writeLine(line []byte) {
	f.mu.Lock()
	if len(f.buf)+len(line)+1 > sandboxBufferSize {
		f.flushLocked()
	}
	f.buf = append(f.buf, line...)
	f.buf = append(f.buf, '\n')
	if len(f.buf) >= sandboxBufferSize {
		f.flushLocked()
	} else if f.timer == nil {
		f.timer = time.AfterFunc(sandboxFlushDelay, f.flush)
	}
	problem := f.takeProblem()
	f.mu.Unlock()
	f.report(problem)
}

// flush writes the buffered container lines.
func (f *sandboxFile) flush() {
	f.mu.Lock()
	f.flushLocked()
	problem := f.takeProblem()
	f.mu.Unlock()
	f.report(problem)
}

func (f *sandboxFile) flushLocked() {
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if len(f.buf) == 0 {
		return
	}
	if err := f.writeLocked(f.buf); err != nil && f.werr == nil {
		f.werr = err
		f.problem = "cannot write the container's output to the sandbox: " + err.Error()
	}
	if cap(f.buf) > sandboxQuietBuffer && len(f.buf) < cap(f.buf)/8 {
		f.buf = nil
		return
	}
	f.buf = f.buf[:0]
}

// writeLocked writes p. When p would take the file past the cap, the
// lines that fit are written, the file is rotated, and so on: the file
// exceeds the cap only by a single line longer than the room left in an
// empty file.
func (f *sandboxFile) writeLocked(p []byte) error {
	for f.file != nil && f.size+int64(len(p)) > f.maxSize {
		if room := f.maxSize - f.size; room > 0 {
			if cut := bytes.LastIndexByte(p[:room], '\n'); cut >= 0 {
				if err := f.rawWrite(p[:cut+1]); err != nil {
					return err
				}
				p = p[cut+1:]
			}
		}
		if f.size == 0 {
			break
		}
		f.rotateLocked()
		if f.size != 0 {
			// Rotation failed (reported): write on rather than lose output.
			break
		}
	}
	return f.rawWrite(p)
}

func (f *sandboxFile) rawWrite(p []byte) error {
	n, err := f.w.Write(p)
	f.size += int64(n)
	return err
}

// rotateLocked copies the file to name.1 (after shifting the older
// copies up, the oldest dropped) and empties it in place, copytruncate
// style: the agent keeps its descriptor. A copy that fails is reported
// and the file is emptied anyway: the cap protects the host.
func (f *sandboxFile) rotateLocked() {
	if f.keep > 0 {
		if err := f.copyToRotated(); err != nil {
			f.problem = "could not keep a rotated copy (the file is emptied anyway): " + err.Error()
		}
	}
	if err := f.file.Truncate(0); err != nil {
		f.problem = "could not empty the file to rotate it: " + err.Error()
		return
	}
	if !f.appendFD {
		if _, err := f.file.Seek(0, io.SeekStart); err != nil {
			f.problem = "could not rewind the file after emptying it: " + err.Error()
		}
	}
	f.size = 0
}

// rotatedName is the name of the n-th copy, inside the sandbox.
func (f *sandboxFile) rotatedName(n int) string {
	return filepath.Join(f.dir, fmt.Sprintf("%s.%d", f.name, n))
}

// copyToRotated shifts name.1 … name.(keep-1) up by one and writes the
// file's content to name.1. Names the container may have planted are
// never followed: an entry that is not a regular file is unlinked (never
// its target), renames replace directory entries, and the copy is written
// to a new file created exclusively in the sandbox, then renamed.
func (f *sandboxFile) copyToRotated() error {
	source, err := openSameFile(f.file, filepath.Join(f.dir, f.name))
	if err != nil {
		return err
	}
	defer source.Close()
	for n := 1; n <= f.keep; n++ {
		name := f.rotatedName(n)
		if info, err := os.Lstat(name); err == nil && !info.Mode().IsRegular() {
			if err := os.Remove(name); err != nil {
				return fmt.Errorf("remove %s, which is not a regular file: %w", name, err)
			}
		}
	}
	for n := f.keep - 1; n >= 1; n-- {
		if err := os.Rename(f.rotatedName(n), f.rotatedName(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	tmp, err := os.CreateTemp(f.dir, "."+f.name+".rotating-*")
	if err != nil {
		return err
	}
	info, err := source.Stat()
	if err == nil {
		err = tmp.Chmod(info.Mode().Perm())
	}
	if err == nil {
		// A reader of the file itself lets the kernel copy it.
		_, err = io.Copy(tmp, io.LimitReader(source, info.Size()))
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.rotatedName(1))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func (f *sandboxFile) takeProblem() string {
	problem := f.problem
	f.problem = ""
	if problem == "" {
		return ""
	}
	kind, _, _ := strings.Cut(problem, ":")
	if f.reported[kind] {
		return ""
	}
	f.reported[kind] = true
	return problem
}

// report logs a problem found under the lock, once the lock is free.
func (f *sandboxFile) report(problem string) {
	if problem != "" {
		f.logger.Warn(problem)
	}
}

// sandboxSink writes the container's lines to the sandbox's stdout and
// stderr, as the container wrote them.
type sandboxSink struct {
	stdout, stderr *sandboxFile
}

var _ containerLineSink = (*sandboxSink)(nil)

// newSandboxSink writes to the executor's stdout and stderr: the
// sandboxFiles main opened, or plain writers (tests) wrapped unrotated.
func newSandboxSink(stdout, stderr io.Writer) *sandboxSink {
	wrap := func(w io.Writer, name string) *sandboxFile {
		if f, ok := w.(*sandboxFile); ok {
			return f
		}
		return &sandboxFile{w: w, name: name, reported: map[string]bool{}, logger: log.WithField("file", name)}
	}
	return &sandboxSink{stdout: wrap(stdout, "stdout"), stderr: wrap(stderr, "stderr")}
}

func (s *sandboxSink) containerLine(stream logStream, line []byte) {
	if stream == streamStderr {
		s.stderr.writeLine(line)
	} else {
		s.stdout.writeLine(line)
	}
}

func (s *sandboxSink) closeSink() {
	s.stdout.flush()
	s.stderr.flush()
}
