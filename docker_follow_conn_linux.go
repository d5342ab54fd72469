package main

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// followConn is a unix-socket connection that Go's network poller never
// sees (docker_follow_conn.go says why). Its socket is non-blocking. A busy
// stream (more than followQuickReads reads of data in a row, each within
// two followReadGaps of the one before) is read once per followReadGap
// (pause says how it waits); otherwise, and when a busy stream is found
// empty followQuietReads times in a row, the next record is waited for in
// poll(2), which blocks the calling goroutine's thread in the kernel: a
// quiet stream's record, and the end of the output, are read as soon as
// they arrive. Close shuts the socket down, which ends a blocked poll at
// once, and closes the descriptor when no read or write is using it any
// more, so that a descriptor number is never reused under a system call
// still running on it.
type followConn struct {
	mu     sync.Mutex
	fd     int
	users  int
	closed bool

	// lastData is when the last read that found data began, quick how
	// many such reads in a row began within two followReadGaps of the one
	// before (reads are serial: the HTTP response is read by one
	// goroutine).
	lastData time.Time
	quick    int
	// lastPark is when a pause last parked in the Go scheduler.
	lastPark time.Time
	address  string
}

func dialFollowConn(address string) (net.Conn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("socket", err)}
	}
	// Connected while blocking: a non-blocking connect to a unix socket
	// whose backlog is full (a daemon busy accepting) fails with EAGAIN
	// instead of waiting its turn.
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: address})
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		err = os.NewSyscallError("fcntl", unix.SetNonblock(fd, true))
	} else {
		err = os.NewSyscallError("connect", err)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: address, Net: "unix"}, Err: err}
	}
	return &followConn{fd: fd, address: address}, nil
}

// use marks a system call about to run on the descriptor.
func (c *followConn) use() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return -1, net.ErrClosed
	}
	c.users++
	return c.fd, nil
}

func (c *followConn) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users--
	if c.closed && c.users == 0 {
		unix.Close(c.fd)
	}
}

func (c *followConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	paced := c.quick > followQuickReads
	if since := time.Since(c.lastData); paced && since < followReadGap {
		c.pause(followReadGap - since)
	}
	fd, err := c.use()
	if err != nil {
		return 0, c.opError("read", err)
	}
	defer c.done()
	misses, polled := 0, false
	for {
		start := time.Now()
		n, err := rawRead(fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			// Nothing yet. A busy stream is between two records: look
			// again after a gap (a Close meanwhile shuts the socket
			// down, and the next read finds the end). A quiet one is
			// waited for in poll(2), which Close ends too.
			if paced && misses < followQuietReads {
				misses++
				c.pause(followReadGap)
				continue
			}
			polled = true
			if err := waitFor(fd, unix.POLLIN); err != nil {
				return 0, c.opError("read", err)
			}
			continue
		case err != nil:
			return 0, c.opError("read", os.NewSyscallError("read", err))
		case n == 0:
			if c.isClosed() {
				return 0, c.opError("read", net.ErrClosed)
			}
			return 0, io.EOF
		}
		c.quick = quickReads(c.quick, paced, polled, start.Sub(c.lastData))
		c.lastData = start
		return n, nil
	}
}

// quickReads is the count of quick reads of data in a row after one more
// read of data, which began sinceLast after the one before. Reads that
// follow each other closely make the stream busy (paced reads come a gap
// apart, a little more with the timer's slack); a busy (paced) stream
// stays busy through the empty reads it tolerates, so that a short lull
// in Docker's writes does not cost a wait in poll(2) and a run of
// unpaced reads to become busy again; data after a wait in poll(2), or
// after a longer gap, makes it quiet.
func quickReads(quick int, paced, polled bool, sinceLast time.Duration) int {
	if (paced && !polled) || sinceLast < 2*followReadGap {
		return quick + 1
	}
	return 0
}

// rawRead reads the non-blocking socket without telling the Go scheduler
// that a system call begins: it never blocks, and every blocking system
// call wakes the runtime's monitor thread (sysmon) out of its sleep, which
// then polls every 20 µs for a while; at a read per millisecond that
// polling cost more than the reads.
func rawRead(fd int, p []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// pause waits d before the next read of a busy stream. Parked in the Go
// scheduler, the goroutine would cost an idle scheduling round each time
// (a poll of the network, a wait in epoll with a timeout, often another
// thread woken): so most pauses sleep in the kernel without telling the
// scheduler (rawRead says why), holding the processor. The goroutines
// waiting to run get it first (Gosched), and timers run on time; but the
// scheduler polls the network only when it runs out of work (its monitor
// thread does, every 10 ms at most), so at least every followParkEvery
// the pause parks (time.Sleep): another connection's event waits at most
// about that long.
func (c *followConn) pause(d time.Duration) {
	now := time.Now()
	if parkNow(now.Sub(c.lastPark)) {
		c.lastPark = now
		time.Sleep(d)
		return
	}
	runtime.Gosched()
	ts := unix.NsecToTimespec(int64(d))
	syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// parkNow tells whether a pause parks, sinceLast after the last that did.
func parkNow(sinceLast time.Duration) bool {
	return sinceLast >= followParkEvery
}

// waitFor blocks until the socket is ready for events (unix.POLLIN,
// unix.POLLOUT), is shut down or failed.
func waitFor(fd int, events int16) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		return nil
	}
}

func (c *followConn) Write(p []byte) (int, error) {
	fd, err := c.use()
	if err != nil {
		return 0, c.opError("write", err)
	}
	defer c.done()
	written := 0
	for written < len(p) {
		n, err := unix.Write(fd, p[written:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := waitFor(fd, unix.POLLOUT); err != nil {
				return written, c.opError("write", err)
			}
			continue
		case err != nil:
			return written, c.opError("write", os.NewSyscallError("write", err))
		}
		written += n
	}
	return written, nil
}

// CloseWrite shuts the sending half down; reads go on.
func (c *followConn) CloseWrite() error {
	fd, err := c.use()
	if err != nil {
		return c.opError("close", err)
	}
	defer c.done()
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		return c.opError("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

func (c *followConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close ends the connection; a read blocked on it returns.
func (c *followConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	// Wakes a read or write blocked in the kernel; the descriptor is
	// closed by the last of them (done), or here when none runs.
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
	if c.users == 0 {
		unix.Close(c.fd)
	}
	return nil
}

func (c *followConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "unix", Addr: c.RemoteAddr(), Err: err}
}

func (c *followConn) LocalAddr() net.Addr  { return &net.UnixAddr{Net: "unix"} }
func (c *followConn) RemoteAddr() net.Addr { return &net.UnixAddr{Name: c.address, Net: "unix"} }

// errFollowDeadline: go-dockerclient sets deadlines only on streams with a
// timeout, which the follow has none of (logs.go watches for stalls itself).
var errFollowDeadline = errors.New("the follow connection has no deadlines")

func (c *followConn) SetDeadline(t time.Time) error      { return c.deadline(t) }
func (c *followConn) SetReadDeadline(t time.Time) error  { return c.deadline(t) }
func (c *followConn) SetWriteDeadline(t time.Time) error { return c.deadline(t) }

func (c *followConn) deadline(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return errFollowDeadline
}
