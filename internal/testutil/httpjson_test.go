package testutil

// Tests of WriteJSON (httpjson.go).

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteJSONAnswersTheDocumentWithItsHeaders(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, map[string]any{"hostname": "agent-1", "ports": []int{31000}})
	const want = `{"hostname":"agent-1","ports":[31000]}`
	if w.Code != http.StatusOK || w.Body.String() != want {
		t.Fatalf("answer %d %q, want 200 %q", w.Code, w.Body.String(), want)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	if got := w.Header().Get("Content-Length"); got != "38" {
		t.Errorf("Content-Length %q, want 38", got)
	}
}

func TestWriteJSONRefusesWhatCannotBeEncoded(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, map[string]any{"c": make(chan int)})
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "unsupported type") {
		t.Fatalf("answer %d %q, want 500 naming the unsupported type", w.Code, w.Body.String())
	}
}
