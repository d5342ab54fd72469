package testutil

// Tests of Serve (serve.go).

import (
	"io"
	"net/http"
	"testing"
	"time"
)

func TestServeAnswersUntilClosed(t *testing.T) {
	listener, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	srv, done := Serve(listener, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "served")
	}))
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "served" {
		t.Fatalf("body %q, want served", body)
	}
	select {
	case <-done:
		t.Fatal("done closed while serving")
	default:
	}
	if srv.ReadHeaderTimeout <= 0 {
		t.Error("no header timeout")
	}
	_ = srv.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("done not closed 10s after Close")
	}
	if _, err := client.Get("http://" + addr + "/"); err == nil {
		t.Error("the closed server still answered")
	}
}
