package testutil

// httpjson.go owns how the test servers answer with a JSON document.

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// WriteJSON answers 200 with v encoded as JSON, with its Content-Type and
// Content-Length, as the real servers do; a v that cannot be encoded is a
// 500 naming the error.
func WriteJSON(w http.ResponseWriter, v any) {
	document, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(document)))
	_, _ = w.Write(document)
}
