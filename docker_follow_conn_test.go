package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The follow client's connections deliver every byte, in order, however
// the peer writes them, and Close still ends them.
func TestFollowConnDeliversEveryByteInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker.sock")
	listener, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	var want bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&want, "record %d\n", i)
	}
	served := make(chan error, 1)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		// One write per record, as a following Docker flushes them.
		for _, line := range bytes.SplitAfter(want.Bytes(), []byte("\n")) {
			if _, err := conn.Write(line); err != nil {
				served <- err
				return
			}
		}
		served <- nil
	}()
	dialer := followDialer{next: &net.Dialer{}}
	conn, err := dialer.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %d bytes, want %d, or not in order", len(got), want.Len())
	}
	if err := conn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("a read after Close succeeded")
	}
}

// listenUnix serves one connection on a fresh unix socket with serve.
func listenUnix(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	listener, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		serve(conn)
	}()
	return path
}

// A quiet stream's record is read as soon as it arrives, while the peer
// keeps the connection open; and Close ends a read blocked on a quiet
// connection (the follow is cancelled that way).
func TestFollowConnQuietStreamAndClose(t *testing.T) {
	release := make(chan struct{})
	path := listenUnix(t, func(conn net.Conn) {
		conn.Write([]byte("one record\n"))
		<-release
	})
	defer close(release)
	conn, err := followDialer{next: &net.Dialer{}}.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		data []byte
		err  error
	}
	read := func() <-chan result {
		done := make(chan result, 1)
		go func() {
			buf := make([]byte, 100)
			n, err := conn.Read(buf)
			done <- result{buf[:n], err}
		}()
		return done
	}
	select {
	case r := <-read():
		if r.err != nil || string(r.data) != "one record\n" {
			t.Fatalf("read %q, %v; want the one record", r.data, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the record written to a quiet connection was not read")
	}
	blocked := read()
	// Close while the read is (most likely) blocked in the kernel; when
	// it is not there yet, it finds the connection closed. Either way it
	// ends with an error.
	if err := conn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case r := <-blocked:
		if r.err == nil {
			t.Fatalf("a read of a closed connection returned %q and no error", r.data)
		}
		if runtime.GOOS == "linux" && !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want net.ErrClosed", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a blocked read")
	}
	if err := conn.Close(); err == nil {
		t.Fatal("a second Close succeeded")
	}
}

// A peer that closes ends the stream with io.EOF after its last byte.
func TestFollowConnPeerCloseIsEOF(t *testing.T) {
	path := listenUnix(t, func(conn net.Conn) {
		conn.Write([]byte("last"))
	})
	conn, err := followDialer{next: &net.Dialer{}}.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "last" {
		t.Fatalf("read %q, %v; want \"last\" and EOF", got, err)
	}
}

// A socket nobody listens on is a dial error naming it.
func TestFollowConnDialError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.sock")
	_, err := followDialer{next: &net.Dialer{}}.Dial("unix", path)
	if err == nil {
		t.Fatal("dialing an absent socket succeeded")
	}
	if !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Fatalf("dial error %q does not name the socket", err)
	}
}
