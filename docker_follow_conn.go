package main

// docker_follow_conn.go owns the Docker client that follows a container's
// output (logs.go) and the large read buffer of its connections.
//
// go-dockerclient reads a unix-socket stream through a 4 KiB buffer, and a
// following Docker flushes every record on its own, so a chatty container
// cost a read system call per few records. The follow client's connections
// read through followReadBuffer instead: one system call takes whatever has
// gathered in the socket (logs.go's pacer lets it gather), many records at
// a time. Only the buffering changes; the bytes, their order and the HTTP
// exchange are go-dockerclient's.

import (
	"bufio"
	"net"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

// followReadBuffer is the most one read system call of a follow
// connection takes. One buffer per followed container.
const followReadBuffer = 256 << 10

// newFollowClient makes the client of followLogs: like long, without a
// timeout, its connections read through followReadBuffer.
func newFollowClient() (*docker.Client, error) {
	client, err := newDockerClient()
	if err != nil {
		return nil, err
	}
	if client.Dialer != nil {
		client.Dialer = bufferedDialer{next: client.Dialer, size: followReadBuffer}
	}
	return client, nil
}

// bufferedDialer dials with next and buffers the reads of the connection.
type bufferedDialer struct {
	next docker.Dialer
	size int
}

func (d bufferedDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := d.next.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: conn, reader: bufio.NewReaderSize(&pacedReader{conn: conn}, d.size)}, nil
}

const (
	// followReadGap and followQuickReads pace a busy follow connection:
	// after more than followQuickReads system calls each begun within
	// followReadGap of the one before, the next waits until followReadGap
	// after the previous began, so that records gather in the socket and
	// one call takes them all. A quiet stream (a read blocking for longer
	// than followReadGap) is read at once. The socket holds what arrives
	// meanwhile (10 MB/s is 50 KB per gap, a quarter of a unix socket's
	// ~200 KB; 10 ms gaps cost less CPU but let the stream fall behind in
	// the bench, 15 ms more so); the container is never slowed:
	// Docker's log driver stores its output in the meantime.
	followReadGap    = 5 * time.Millisecond
	followQuickReads = 4
)

// pacedReader spaces the read system calls of a busy connection.
type pacedReader struct {
	conn      net.Conn
	lastStart time.Time
	quick     int
}

func (r *pacedReader) Read(p []byte) (int, error) {
	now := time.Now()
	if since := now.Sub(r.lastStart); since < followReadGap {
		r.quick++
		if r.quick > followQuickReads {
			time.Sleep(followReadGap - since)
			now = time.Now()
		}
	} else {
		r.quick = 0
	}
	r.lastStart = now
	return r.conn.Read(p)
}

// bufferedConn is a connection whose reads go through a buffer; writes,
// deadlines and Close are the connection's own.
type bufferedConn struct {
	net.Conn
	reader *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	return c.reader.Read(p)
}
