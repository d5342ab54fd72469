package main

// docker_follow_conn.go owns the Docker client that follows a container's
// output (logs.go) and the connection it reads through.
//
// A following Docker writes every record of the container's output on its
// own (one flush, one system call, one socket buffer per record). A unix
// socket's capacity is counted in those buffers, not in bytes: it holds
// ~2 ms of a container writing 10 MB/s of short lines. Read through Go's
// network poller, every record that arrives on an idle connection wakes
// the poller (an epoll_pwait each, thousands a second), and spacing the
// reads only lets the socket fill and Docker fall behind.
//
// So on a unix-socket DOCKER_HOST the follow's connection is a socket
// outside the poller (followConn, docker_follow_conn_linux.go): a quiet
// stream is waited for by its own thread blocked in the kernel (no poller
// wakeups, nothing to do for an idle task; a record is read as soon as it
// arrives), and a busy stream is read at most once per followReadGap, each
// read taking everything that gathered meanwhile, through a buffer of
// followReadBuffer. Only the connection changes; the HTTP exchange is
// go-dockerclient's.

import (
	"bufio"
	"errors"
	"net"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

const (
	// followReadBuffer is the most one read system call of a follow
	// connection takes. One buffer per followed container.
	followReadBuffer = 64 << 10
	// followReadGap is the least time between the starts of two reads of
	// a busy follow connection. What arrives meanwhile waits in the socket: at
	// 10 MB/s of 100-byte lines, 1 ms is about half of what a unix socket
	// holds (Docker waits when it is full; its log driver keeps the
	// output, so the container is never slowed).
	followReadGap = time.Millisecond
	// followQuickReads: more reads of data than this in a row, each
	// within two followReadGaps of the one before, and the stream is
	// busy.
	followQuickReads = 4
	// followQuietReads is how many reads in a row may find a busy stream
	// empty before the next record is waited for in the kernel.
	followQuietReads = 4
	// followParkEvery is the longest a busy stream's pauses hold the
	// processor in a row without letting the Go scheduler poll the
	// network (followConn.pause).
	followParkEvery = 4 * time.Millisecond
)

// newFollowClient makes the client of followLogs: like long, without a
// timeout, and on a unix socket its connections are followConns.
func newFollowClient() (*docker.Client, error) {
	client, err := newDockerClient()
	if err != nil {
		return nil, err
	}
	if client.Dialer != nil {
		client.Dialer = followDialer{next: client.Dialer}
	}
	return client, nil
}

// errFollowConnUnsupported is dialFollowConn's answer on a platform that
// dials follow connections through the ordinary dialer.
var errFollowConnUnsupported = errors.New("follow connections outside the poller are not supported here")

// followDialer dials unix sockets as followConns, anything else with next.
type followDialer struct {
	next docker.Dialer
}

func (d followDialer) Dial(network, address string) (net.Conn, error) {
	if network == "unix" {
		if conn, err := dialFollowConn(address); err != errFollowConnUnsupported {
			if err != nil {
				return nil, err
			}
			return &bufferedConn{Conn: conn, reader: bufio.NewReaderSize(conn, followReadBuffer)}, nil
		}
	}
	return d.next.Dial(network, address)
}

// bufferedConn is a connection whose reads go through a buffer; writes,
// deadlines and Close are the connection's own. go-dockerclient reads
// the response through a 4 KiB buffer of its own; this one lets a read
// system call take everything the socket holds.
type bufferedConn struct {
	net.Conn
	reader *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	return c.reader.Read(p)
}

// CloseWrite ends the sending half, as go-dockerclient does on the
// connection of an attach once it has nothing more to send.
func (c *bufferedConn) CloseWrite() error {
	if closer, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return closer.CloseWrite()
	}
	return nil
}
