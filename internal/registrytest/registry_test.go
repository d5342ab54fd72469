package registrytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url, user, password string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestAuthenticationIsRequired(t *testing.T) {
	reg := NewServer(t, map[string]string{"alice": "s3cret"})
	base := reg.URL() + "/v2/"
	for _, tc := range []struct {
		user, password string
		want           int
	}{
		{"", "", http.StatusUnauthorized},
		{"alice", "wrong", http.StatusUnauthorized},
		{"mallory", "s3cret", http.StatusUnauthorized},
		{"alice", "s3cret", http.StatusOK},
	} {
		resp := get(t, base, tc.user, tc.password)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("user %q password %q: status %d, want %d", tc.user, tc.password, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
	requests := reg.Requests()
	if len(requests) != 4 {
		t.Fatalf("%d requests recorded, want 4", len(requests))
	}
	if requests[3].User != "alice" || requests[3].Status != http.StatusOK || requests[0].User != "" {
		t.Errorf("requests recorded as %+v", requests)
	}
}

// uploadBlob pushes content as a blob of repository in one request.
func uploadBlob(t *testing.T, reg *Server, repository string, content []byte) string {
	t.Helper()
	sum := sha256.Sum256(content)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	req, _ := http.NewRequest(http.MethodPost, reg.URL()+"/v2/"+repository+"/blobs/uploads/", nil)
	req.SetBasicAuth("alice", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	location := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || location == "" {
		t.Fatalf("start upload: status %d, location %q", resp.StatusCode, location)
	}
	separator := "?"
	if strings.Contains(location, "?") {
		separator = "&"
	}
	if !strings.HasPrefix(location, "http") {
		location = reg.URL() + location
	}
	req, _ = http.NewRequest(http.MethodPut, location+separator+"digest="+digest, bytes.NewReader(content))
	req.SetBasicAuth("alice", "s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finish upload: status %d", resp.StatusCode)
	}
	return digest
}

func TestStalledBlobDownload(t *testing.T) {
	reg := NewServer(t, map[string]string{"alice": "s3cret"})
	content := bytes.Repeat([]byte("layer "), 1000)
	digest := uploadBlob(t, reg, "team/app", content)
	blobURL := reg.URL() + "/v2/team/app/blobs/" + digest

	resp := get(t, blobURL, "alice", "s3cret")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, content) {
		t.Fatalf("download before stalling: %d bytes, %v", len(body), err)
	}

	reg.StallBlobDownloads()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, blobURL, nil)
	req.SetBasicAuth("alice", "s3cret")
	start := time.Now()
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("a stalled download should still send its headers: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a stalled download completed with %d bytes", len(got))
	}
	if len(got) == 0 || len(got) >= len(content) || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("stalled download gave %d of %d bytes after %s; want a few bytes, then nothing until the client gave up",
			len(got), len(content), time.Since(start))
	}
	if reg.StalledDownloads() != 1 {
		t.Fatalf("%d stalled downloads counted, want 1", reg.StalledDownloads())
	}
}

func TestCloseReleasesStalledDownloads(t *testing.T) {
	reg := NewServer(t, map[string]string{"alice": "s3cret"})
	digest := uploadBlob(t, reg, "team/app", bytes.Repeat([]byte("x"), 4096))
	reg.StallBlobDownloads()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/v2/team/app/blobs/"+digest, nil)
		req.SetBasicAuth("alice", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for reg.StalledDownloads() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the download never reached the registry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	reg.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a stalled download completed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a stalled download hanging")
	}
	reg.Close() // twice is fine
}
