package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// On Linux a unix socket is dialed as a followConn, outside the poller.
func TestFollowDialerDialsAFollowConn(t *testing.T) {
	path := listenUnix(t, func(net.Conn) {})
	conn, err := followDialer{next: &net.Dialer{}}.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buffered, ok := conn.(*bufferedConn)
	if !ok {
		t.Fatalf("dialed %T, want a bufferedConn", conn)
	}
	if _, ok := buffered.Conn.(*followConn); !ok {
		t.Fatalf("a unix socket was dialed as %T, not a followConn", buffered.Conn)
	}
}

// The pacing rule: a busy stream stays busy through the empty reads it
// tolerates; a wait in poll(2) or a long gap makes it quiet; closely
// spaced reads make a quiet stream busy.
func TestFollowConnQuickReads(t *testing.T) {
	for _, tc := range []struct {
		name          string
		quick         int
		paced, polled bool
		sinceLast     time.Duration
		want          int
	}{
		{"a quiet stream's close read", 2, false, false, followReadGap, 3},
		{"a quiet stream's late read", 2, false, false, 3 * followReadGap, 0},
		{"a busy stream's read after a lull", followQuickReads + 3, true, false, followQuietReads * followReadGap, followQuickReads + 4},
		{"a busy stream's read after a wait in poll", followQuickReads + 3, true, true, 50 * followReadGap, 0},
		{"a busy stream's close read after a short poll", followQuickReads + 3, true, true, followReadGap, followQuickReads + 4},
	} {
		if got := quickReads(tc.quick, tc.paced, tc.polled, tc.sinceLast); got != tc.want {
			t.Errorf("%s: %d quick reads, want %d", tc.name, got, tc.want)
		}
	}
}

// A busy stream's pauses hold the processor, but one parks in the Go
// scheduler (which polls the network meanwhile) at least every
// followParkEvery, the first one at once.
func TestFollowConnPauseParks(t *testing.T) {
	for _, tc := range []struct {
		sinceLast time.Duration
		want      bool
	}{
		{0, false},
		{followReadGap, false},
		{followParkEvery - time.Microsecond, false},
		{followParkEvery, true},
		{time.Since(time.Time{}), true}, // no pause parked yet
	} {
		if got := parkNow(tc.sinceLast); got != tc.want {
			t.Errorf("%s after the last park: parks %v, want %v", tc.sinceLast, got, tc.want)
		}
	}
}

// CloseWrite (go-dockerclient's, on an attach it has nothing more to send
// on) ends the sending half only: the peer sees the end, the reads go on.
func TestFollowConnCloseWrite(t *testing.T) {
	got := make(chan []byte, 1)
	path := listenUnix(t, func(conn net.Conn) {
		data, _ := io.ReadAll(conn)
		conn.Write([]byte("after"))
		got <- data
	})
	conn, err := followDialer{next: &net.Dialer{}}.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("request"))
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	select {
	case data := <-got:
		if string(data) != "request" {
			t.Fatalf("the peer read %q", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the peer did not see the end of what was sent")
	}
	reply, err := io.ReadAll(conn)
	if err != nil || string(reply) != "after" {
		t.Fatalf("read %q, %v after CloseWrite; want \"after\"", reply, err)
	}
}
