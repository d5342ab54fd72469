package syslogtest

import (
	"net"
	"reflect"
	"testing"
	"time"
)

func TestServerWritesRawMessagesAndStops(t *testing.T) {
	s := NewServer(t)
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := []string{`{"Payload":"a \u003c b"}`, "<14>1 2026-01-01T00:00:00Z host app - - - rfc 5424", "no newline"}
	for _, m := range sent[:2] {
		conn.Write([]byte(m + "\n"))
	}
	conn.Write([]byte(sent[2]))
	deadline := time.Now().Add(20 * time.Second)
	for len(s.Messages()) < len(sent) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.Messages(); !reflect.DeepEqual(got, sent) {
		t.Fatalf("received %q, want %q", got, sent)
	}
	s.Stop()
	// Nothing listens any more: the kernel refuses, and a connected UDP
	// socket reports it on a later write.
	refused := false
	for i := 0; i < 20 && !refused; i++ {
		_, err := conn.Write([]byte("after stop\n"))
		refused = err != nil
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Error("datagrams are still accepted after Stop")
	}
}
