package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
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
	dialer := bufferedDialer{next: &net.Dialer{}, size: followReadBuffer}
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
