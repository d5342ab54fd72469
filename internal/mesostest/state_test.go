package mesostest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func getState(t *testing.T, url string) map[string]any {
	t.Helper()
	response, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		t.Fatalf("status %d", response.StatusCode)
	}
	var state map[string]any
	if err := json.NewDecoder(response.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	return state
}

func TestStateReportsTheMaster(t *testing.T) {
	a := NewAgent(t, Config{MasterHostname: "master.example", AgentHostname: "agent.example"})
	for _, path := range []string{"/state", "/slave(1)/state"} {
		state := getState(t, "http://"+a.Addr()+path)
		if state["master_hostname"] != "master.example" || state["hostname"] != "agent.example" || state["id"] != a.Config().AgentID {
			t.Errorf("%s: %v", path, state)
		}
	}
	if a.StateRequests() != 2 {
		t.Errorf("%d state requests, want 2", a.StateRequests())
	}
	if len(a.Calls()) != 0 {
		t.Errorf("/state recorded as executor API calls: %v", a.Calls())
	}
}

func TestStateWithoutMasterOmitsTheField(t *testing.T) {
	a := NewAgent(t, Config{})
	if _, ok := getState(t, "http://"+a.Addr()+"/state")["master_hostname"]; ok {
		t.Error("master_hostname present for an agent with no master")
	}
}

func TestStateAnswersGetOnly(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	response, err := http.Post("http://"+a.Addr()+"/state", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusMethodNotAllowed || len(a.Violations()) != 1 {
		t.Errorf("status %d, violations %v; want 405 and one violation", response.StatusCode, a.Violations())
	}
}
