package mastertest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestSlavesDocument(t *testing.T) {
	s := NewServer(t, Agent{Hostname: "a.example"}, Agent{Hostname: "b.example", Port: 5052, Deactivated: true})
	for _, path := range []string{"/slaves", "/master/slaves"} {
		response, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		var document struct {
			Slaves []struct {
				ID       string `json:"id"`
				PID      string `json:"pid"`
				Hostname string `json:"hostname"`
				Port     int    `json:"port"`
				Active   bool   `json:"active"`
			} `json:"slaves"`
			RecoveredSlaves []any `json:"recovered_slaves"`
		}
		err = json.NewDecoder(response.Body).Decode(&document)
		response.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(document.Slaves) != 2 || document.RecoveredSlaves == nil {
			t.Fatalf("%s: %+v", path, document)
		}
		second := document.Slaves[1]
		if second.Hostname != "b.example" || second.Port != 5052 || second.Active || second.PID != "slave(1)@b.example:5052" || second.ID == "" {
			t.Errorf("%s: second agent %+v", path, second)
		}
		if !document.Slaves[0].Active || document.Slaves[0].Port != 5051 {
			t.Errorf("%s: first agent %+v", path, document.Slaves[0])
		}
	}
	if s.Requests() != 2 {
		t.Errorf("%d requests, want 2", s.Requests())
	}
}

func TestStatusAndBodyOverrides(t *testing.T) {
	s := NewServer(t)
	s.SetStatus(http.StatusUnauthorized)
	response, err := http.Get(s.URL() + "/slaves")
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", response.StatusCode)
	}
	s.SetStatus(0)
	s.SetBody("not json")
	response, err = http.Get(s.URL() + "/slaves")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	if string(body) != "not json" {
		t.Errorf("body %q", body)
	}
}

func TestStrictOnPathAndMethod(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	response, err := http.Post(s.URL()+"/slaves", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", response.StatusCode)
	}
	response, err = http.Get(s.URL() + "/state")
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusNotFound {
		t.Errorf("GET /state: status %d, want 404", response.StatusCode)
	}
	if got := s.Violations(); len(got) != 2 || s.Requests() != 0 {
		t.Errorf("violations %q, %d requests; want both refusals recorded and none answered", got, s.Requests())
	}
}
