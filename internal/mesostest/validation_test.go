package mesostest

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
)

const (
	ctJSON  = "application/json"
	ctProto = "application/x-protobuf"
)

// callBuilder writes request bodies for raw HTTP tests.
type callBuilder struct{ fid, eid string }

func newCallBuilder(a *Agent) callBuilder {
	cfg := a.Config()
	return callBuilder{fid: cfg.FrameworkID, eid: cfg.ExecutorID}
}

// json returns a JSON call with the agent's IDs and the given extra members.
func (b callBuilder) json(members string) []byte {
	s := fmt.Sprintf(`{"executor_id":{"value":%q},"framework_id":{"value":%q}`, b.eid, b.fid)
	if members != "" {
		s += "," + members
	}
	return []byte(s + "}")
}

// jsonUpdate returns a JSON UPDATE whose status has the given extra members.
func (b callBuilder) jsonUpdate(statusMembers string) []byte {
	return b.json(`"type":"UPDATE","update":{"status":{"task_id":{"value":"t1"},"state":"TASK_RUNNING"` + statusMembers + `}}`)
}

func (b callBuilder) proto(t *testing.T, call executor.Call) []byte {
	t.Helper()
	if call.ExecutorID.Value == "" {
		call.ExecutorID.Value = b.eid
	}
	if call.FrameworkID.Value == "" {
		call.FrameworkID.Value = b.fid
	}
	body, err := proto.Marshal(&call)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// protoUpdate returns a protobuf UPDATE of a well-formed status changed by edit.
func (b callBuilder) protoUpdate(t *testing.T, edit func(*mesos.TaskStatus)) []byte {
	id := uuid.New()
	status := mesos.TaskStatus{
		TaskID: mesos.TaskID{Value: "t1"},
		State:  mesos.TASK_RUNNING.Enum(),
		Source: mesos.SOURCE_EXECUTOR.Enum(),
		UUID:   id[:],
	}
	edit(&status)
	return b.proto(t, executor.Call{Type: executor.Call_UPDATE, Update: &executor.Call_Update{Status: status}})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestValidation(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	b := newCallBuilder(a)
	validUUID := uuid.New()
	textUUID := []byte(uuid.NewString()) // 36 bytes: the classic mistake
	version0 := validUUID
	version0[6] &= 0x0f
	eid, fid := b.eid, b.fid
	validate := "Failed to validate Executor::Call: "
	convert := "Failed to convert JSON into Call protobuf: "
	uuidJSON := `,"source":"SOURCE_EXECUTOR","uuid":"` + b64(validUUID[:]) + `"`

	cases := []struct {
		name        string
		contentType string // "-" for none
		accept      string
		body        []byte
		status      int
		want        string // exact body, or prefix when it ends in "…"
	}{
		{"no content type", "-", "", b.json(`"type":"HEARTBEAT"`), 400, "Expecting 'Content-Type' to be present"},
		{"content type with charset", ctJSON + "; charset=utf-8", "", b.json(`"type":"HEARTBEAT"`), 415,
			"Expecting 'Content-Type' of application/json or application/x-protobuf"},
		{"text/plain", "text/plain", "", []byte("hi"), 415,
			"Expecting 'Content-Type' of application/json or application/x-protobuf"},

		{"protobuf garbage", ctProto, "", []byte{0xff, 0xff, 0xff}, 400, "Failed to parse body into Call protobuf"},
		{"protobuf without required ids", ctProto, "", nil, 400, "Failed to parse body into Call protobuf"},
		{"protobuf unknown state number", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) {
			s.State = mesos.TaskState(99).Enum()
		}), 400, "Failed to parse body into Call protobuf"},
		{"protobuf unknown type number", ctProto, "", b.proto(t, executor.Call{Type: executor.Call_Type(99)}), 400,
			validate + "Expecting 'type' to be present"},

		{"JSON syntax error", ctJSON, "", []byte(`{"type":`), 400, "Failed to parse body into JSON: …"},
		{"JSON array", ctJSON, "", []byte(`[]`), 400, "Failed to parse body into JSON: …"},
		{"JSON trailing data", ctJSON, "", []byte(`{} {}`), 400, "Failed to parse body into JSON: …"},
		{"JSON missing ids", ctJSON, "", []byte(`{"type":"HEARTBEAT"}`), 400,
			convert + "Missing required fields: executor_id, framework_id"},
		{"JSON null id", ctJSON, "", []byte(`{"executor_id":null,"framework_id":{"value":"f"},"type":"HEARTBEAT"}`), 400,
			convert + "Missing required fields: executor_id"},
		{"JSON nested missing", ctJSON, "", b.json(`"type":"UPDATE","update":{"status":{"uuid":"` + b64(validUUID[:]) + `"}}`), 400,
			convert + "Missing required fields: update.status.task_id, update.status.state"},
		{"JSON missing in repeated", ctJSON, "", b.json(`"type":"SUBSCRIBE","subscribe":{"unacknowledged_tasks":[{"name":"n","task_id":{"value":"t"}}]}`), 400,
			convert + "Missing required fields: subscribe.unacknowledged_tasks[0].agent_id"},
		{"JSON enum as number", ctJSON, "", b.json(`"type":4`), 400, convert + "Not expecting a JSON number for field 'type'"},
		{"JSON unknown required enum", ctJSON, "", b.json(`"type":"UPDATE","update":{"status":{"task_id":{"value":"t1"},"state":"TASK_BOGUS"}}`), 400,
			convert + "Failed to find enum for 'TASK_BOGUS'"},
		{"JSON wrong value type", ctJSON, "", b.json(`"type":"MESSAGE","message":{"data":17}`), 400, convert + "…"},
		{"JSON unknown type name", ctJSON, "", b.json(`"type":"FOO"`), 400, validate + "Expecting 'type' to be present"},
		{"JSON null type", ctJSON, "", b.json(`"type":null`), 400, validate + "Expecting 'type' to be present"},
		{"JSON unknown optional enum is dropped", ctJSON, "", b.jsonUpdate(`,"source":"SOURCE_BOGUS","uuid":"` + b64(validUUID[:]) + `"`), 400,
			validate + fmt.Sprintf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'", eid, fid)},

		{"SUBSCRIBE without subscribe", ctJSON, "", b.json(`"type":"SUBSCRIBE"`), 400, validate + "Expecting 'subscribe' to be present"},
		{"SUBSCRIBE without subscribe (protobuf)", ctProto, "", b.proto(t, executor.Call{Type: executor.Call_SUBSCRIBE}), 400,
			validate + "Expecting 'subscribe' to be present"},
		{"UPDATE without update", ctJSON, "", b.json(`"type":"UPDATE"`), 400, validate + "Expecting 'update' to be present"},
		{"MESSAGE without message", ctProto, "", b.proto(t, executor.Call{Type: executor.Call_MESSAGE}), 400,
			validate + "Expecting 'message' to be present"},
		{"missing uuid", ctJSON, "", b.jsonUpdate(`,"source":"SOURCE_EXECUTOR"`), 400, validate + "Expecting 'uuid' to be present"},
		{"missing uuid (protobuf)", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) { s.UUID = nil }), 400,
			validate + "Expecting 'uuid' to be present"},
		{"empty uuid", ctJSON, "", b.jsonUpdate(`,"source":"SOURCE_EXECUTOR","uuid":""`), 400, validate + "Not a valid UUID"},
		{"textual uuid", ctJSON, "", b.jsonUpdate(`,"source":"SOURCE_EXECUTOR","uuid":"` + b64(textUUID) + `"`), 400,
			validate + "Not a valid UUID"},
		{"textual uuid (protobuf)", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) { s.UUID = textUUID }), 400,
			validate + "Not a valid UUID"},
		{"version 0 uuid", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) { s.UUID = version0[:] }), 400,
			validate + "Not a valid UUID"},
		{"status executor_id mismatch", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) {
			s.ExecutorID = &mesos.ExecutorID{Value: "someone-else"}
		}), 400, validate + fmt.Sprintf("ExecutorID in Call: %s does not match ExecutorID in TaskStatus: someone-else", eid)},
		{"source missing", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) { s.Source = nil }), 400,
			validate + fmt.Sprintf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'", eid, fid)},
		{"source agent", ctJSON, "", b.jsonUpdate(`,"source":"SOURCE_AGENT","uuid":"` + b64(validUUID[:]) + `"`), 400,
			validate + fmt.Sprintf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'", eid, fid)},
		{"TASK_STAGING", ctProto, "", b.protoUpdate(t, func(s *mesos.TaskStatus) { s.State = mesos.TASK_STAGING.Enum() }), 400,
			validate + fmt.Sprintf("Received TASK_STAGING from executor %s of framework %s which is not allowed", eid, fid)},
		{"check status without type", ctJSON, "", b.jsonUpdate(uuidJSON + `,"check_status":{}`), 400,
			validate + "CheckStatusInfo must specify 'type'"},
		{"COMMAND check without command", ctJSON, "", b.jsonUpdate(uuidJSON + `,"check_status":{"type":"COMMAND"}`), 400,
			validate + "Expecting 'command' to be set for COMMAND check's status"},
		{"HTTP check without http", ctJSON, "", b.jsonUpdate(uuidJSON + `,"check_status":{"type":"HTTP"}`), 400,
			validate + "Expecting 'http' to be set for HTTP check's status"},
		{"TCP check without tcp", ctJSON, "", b.jsonUpdate(uuidJSON + `,"check_status":{"type":"TCP"}`), 400,
			validate + "Expecting 'tcp' to be set for TCP check's status"},
		{"UNKNOWN check type", ctJSON, "", b.jsonUpdate(uuidJSON + `,"check_status":{"type":"UNKNOWN"}`), 400,
			validate + "'UNKNOWN' is not a valid check's status type"},

		{"validation before lookup", ctJSON, "", []byte(`{"executor_id":{"value":"x"},"framework_id":{"value":"y"},"type":"UPDATE"}`), 400,
			validate + "Expecting 'update' to be present"},
		{"SUBSCRIBE accepting recordio", ctJSON, "application/recordio", b.json(`"type":"SUBSCRIBE","subscribe":{}`), 406,
			"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"},
		{"SUBSCRIBE accepting text/html", ctProto, "text/html", b.proto(t, executor.Call{Type: executor.Call_SUBSCRIBE, Subscribe: &executor.Call_Subscribe{}}), 406,
			"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"},
		{"SUBSCRIBE refusing both with q=0", ctJSON, "application/json;q=0, application/x-protobuf; q=0", b.json(`"type":"SUBSCRIBE","subscribe":{}`), 406,
			"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"},
		{"HEARTBEAT needs no lookup", ctJSON, "application/recordio", []byte(`{"executor_id":{"value":"x"},"framework_id":{"value":"y"},"type":"HEARTBEAT"}`), 202, ""},
		{"unknown framework", ctJSON, "", []byte(`{"executor_id":{"value":"` + eid + `"},"framework_id":{"value":"y"},"type":"SUBSCRIBE","subscribe":{}}`), 400,
			"Framework cannot be found"},
		{"unknown executor", ctProto, "", b.proto(t, executor.Call{ExecutorID: mesos.ExecutorID{Value: "x"}, Type: executor.Call_MESSAGE, Message: &executor.Call_Message{Data: []byte("m")}}), 400,
			"Executor cannot be found"},
		{"UPDATE before SUBSCRIBE", ctJSON, "", b.jsonUpdate(uuidJSON), 403, "Executor is not subscribed"},
		{"MESSAGE before SUBSCRIBE", ctProto, "", b.proto(t, executor.Call{Type: executor.Call_MESSAGE, Message: &executor.Call_Message{Data: []byte("m")}}), 403,
			"Executor is not subscribed"},
		{"UNKNOWN before SUBSCRIBE", ctProto, "", b.proto(t, executor.Call{Type: executor.Call_UNKNOWN}), 403, "Executor is not subscribed"},
	}
	wantViolations := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{}
			if tc.contentType != "-" {
				header["Content-Type"] = tc.contentType
			}
			if tc.accept != "" {
				header["Accept"] = tc.accept
			}
			resp, body := rawPost(t, a, http.MethodPost, header, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(body, prefix) || len(body) == len(prefix) {
					t.Errorf("body %q, want %q followed by details", body, prefix)
				}
			} else if body != tc.want {
				t.Errorf("body %q, want %q", body, tc.want)
			}
			if body != "" {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("error Content-Type %q", ct)
				}
			}
		})
		if tc.status >= 400 && tc.status != 403 {
			wantViolations++
		}
	}
	if got := len(a.Violations()); got != wantViolations {
		t.Errorf("%d violations recorded, want %d: %q", got, wantViolations, a.Violations())
	}
	if got := a.subscriptionCount(); got != 0 {
		t.Errorf("%d subscriptions, want 0", got)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		resp, body := rawPost(t, a, method, map[string]string{"Content-Type": ctJSON}, nil)
		want := fmt.Sprintf("405 Method Not Allowed. Expecting one of { 'POST' }, but received '%s'.", method)
		if resp.StatusCode != 405 || body != want || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s: %d %q Allow=%q, want 405 %q Allow=POST", method, resp.StatusCode, body, resp.Header.Get("Allow"), want)
		}
	}
	if n := len(a.Violations()); n != 3 {
		t.Errorf("%d violations, want 3", n)
	}
}

func TestPaths(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	body := newCallBuilder(a).json(`"type":"HEARTBEAT"`)
	for path, want := range map[string]int{
		"/api/v1/executor":          202,
		"/slave(1)/api/v1/executor": 202,
		"/api/v1/scheduler":         404,
	} {
		resp, err := rawClient.Post("http://"+a.Addr()+path, ctJSON, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if v := a.Violations(); len(v) != 1 || !strings.Contains(v[0], "/api/v1/scheduler") {
		t.Errorf("Violations() = %q", v)
	}
}

func TestUnknownCallTypeIsNotImplemented(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	newTestExecutor(t, a, codecs.MediaTypeProtobuf).mustSubscribe(nil, nil)
	b := newCallBuilder(a)
	resp, _ := rawPost(t, a, http.MethodPost, map[string]string{"Content-Type": ctProto}, b.proto(t, executor.Call{Type: executor.Call_UNKNOWN}))
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("UNKNOWN call: %d, want 501", resp.StatusCode)
	}
	if v := a.Violations(); len(v) != 1 {
		t.Errorf("Violations() = %q, want the 501", v)
	}
}

// openStream sends a raw SUBSCRIBE and returns the response and a decoder of
// its events in the negotiated media type.
func openStream(t *testing.T, a *Agent, contentType, accept string) (*http.Response, encoding.Decoder) {
	t.Helper()
	b := newCallBuilder(a)
	var body []byte
	if contentType == ctJSON {
		body = b.json(`"type":"SUBSCRIBE","subscribe":{}`)
	} else {
		body = b.proto(t, executor.Call{Type: executor.Call_SUBSCRIBE, Subscribe: &executor.Call_Subscribe{}})
	}
	req, err := http.NewRequest(http.MethodPost, a.URL(), strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if accept != "-" {
		req.Header.Set("Accept", accept)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", resp.StatusCode)
	}
	codec := codecs.ByMediaType[encoding.MediaType(resp.Header.Get("Content-Type"))]
	if codec.NewDecoder == nil {
		t.Fatalf("stream Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return resp, codec.NewDecoder(func() framing.Reader { return recordio.NewReader(resp.Body) })
}

func TestStreamNegotiationAndFraming(t *testing.T) {
	a := NewAgent(t, Config{})
	for _, tc := range []struct {
		contentType, accept, want string
	}{
		{ctJSON, "-", ctJSON},
		{ctProto, "-", ctJSON},
		{ctProto, "*/*", ctJSON},
		{ctProto, "application/*", ctJSON},
		{ctProto, ctProto + ", " + ctJSON, ctJSON},
		{ctJSON, ctProto, ctProto},
		{ctProto, ctProto, ctProto},
		{ctJSON, "application/json;q=0, application/x-protobuf", ctProto},
		{ctJSON, "text/html, application/x-protobuf;q=0.5", ctProto},
	} {
		t.Run(tc.contentType+" accept "+tc.accept, func(t *testing.T) {
			resp, dec := openStream(t, a, tc.contentType, tc.accept)
			if got := resp.Header.Get("Content-Type"); got != tc.want {
				t.Errorf("stream Content-Type %q, want %q", got, tc.want)
			}
			if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
				t.Errorf("stream has a Content-Length (%d)", resp.ContentLength)
			}
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
			}
			var ev executor.Event
			if err := dec.Decode(&ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != executor.Event_SUBSCRIBED || ev.Subscribed.FrameworkInfo.ID.GetValue() != a.Config().FrameworkID {
				t.Errorf("first event %v", ev.Type)
			}
			if err := a.Message([]byte("second record")); err != nil {
				t.Fatal(err)
			}
			ev = executor.Event{}
			if err := dec.Decode(&ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != executor.Event_MESSAGE || string(ev.Message.Data) != "second record" {
				t.Errorf("second event %v", ev.Type)
			}
		})
	}
}

// The agent's framing is "<length>\n<bytes>" per record, nothing else.
func TestStreamRawFrames(t *testing.T) {
	a := NewAgent(t, Config{})
	resp, _ := openStream(t, a, ctJSON, ctJSON)
	r := bufio.NewReader(resp.Body)
	for range 2 {
		var n int
		if _, err := fmt.Fscanf(r, "%d\n", &n); err != nil {
			t.Fatalf("frame length: %v", err)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(r, frame); err != nil {
			t.Fatal(err)
		}
		var ev executor.Event
		if err := ev.UnmarshalJSON(frame); err != nil {
			t.Fatalf("frame %q: %v", frame, err)
		}
		if ev.Type == executor.Event_SUBSCRIBED {
			if err := a.Heartbeat(); err != nil {
				t.Fatal(err)
			}
		} else if ev.Type != executor.Event_HEARTBEAT {
			t.Fatalf("unexpected %v", ev.Type)
		}
	}
}

// Calls must not be sent on the subscription connection. Go's server reads a
// pipelined request only after the stream ends, so the violation is recorded
// then (a real agent would read it at once but answer it after the stream).
func TestCallOnSubscriptionConnection(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	b := newCallBuilder(a)
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	writeRequest := func(body []byte) {
		req, err := http.NewRequest(http.MethodPost, a.URL(), strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ctJSON)
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(conn)
	writeRequest(b.json(`"type":"SUBSCRIBE","subscribe":{}`))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %v %v", resp, err)
	}
	if err := a.WaitForSubscriptions(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	writeRequest(b.json(`"type":"HEARTBEAT"`))

	// A second subscription (on its own connection) ends the first stream.
	newTestExecutor(t, a, codecs.MediaTypeJSON).mustSubscribe(nil, nil)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	resp2, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 202 {
		t.Errorf("pipelined HEARTBEAT: %d", resp2.StatusCode)
	}
	v := a.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "HEARTBEAT") || !strings.Contains(v[0], "subscription connection") {
		t.Errorf("Violations() = %q", v)
	}
	for _, c := range a.Calls() {
		if c.Type == executor.Call_HEARTBEAT && !c.OnSubscriptionConn {
			t.Errorf("HEARTBEAT record %+v not marked OnSubscriptionConn", c)
		}
	}
}

// The same rows as seen by an executor built on mesos-go, in both codecs.
func TestValidationThroughMesosGo(t *testing.T) {
	for _, mt := range mediaTypes {
		t.Run(string(mt), func(t *testing.T) {
			a := NewAgent(t, Config{})
			a.AllowViolations()
			e := newTestExecutor(t, a, mt)
			e.mustSubscribe(nil, nil)
			eid, fid := a.Config().ExecutorID, a.Config().FrameworkID
			malformed := "malformed request: "
			validate := malformed + "Failed to validate Executor::Call: "
			for _, tc := range []struct {
				name string
				edit func(*mesos.TaskStatus)
				want string
			}{
				{"textual uuid", func(s *mesos.TaskStatus) { s.UUID = []byte(uuid.NewString()) }, validate + "Not a valid UUID"},
				{"no uuid", func(s *mesos.TaskStatus) { s.UUID = nil }, validate + "Expecting 'uuid' to be present"},
				{"no source", func(s *mesos.TaskStatus) { s.Source = nil },
					validate + fmt.Sprintf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'", eid, fid)},
				{"TASK_STAGING", func(s *mesos.TaskStatus) { s.State = mesos.TASK_STAGING.Enum() },
					validate + fmt.Sprintf("Received TASK_STAGING from executor %s of framework %s which is not allowed", eid, fid)},
				{"other executor in status", func(s *mesos.TaskStatus) { s.ExecutorID = &mesos.ExecutorID{Value: "x"} },
					validate + fmt.Sprintf("ExecutorID in Call: %s does not match ExecutorID in TaskStatus: x", eid)},
			} {
				status := e.status("t1", mesos.TASK_RUNNING)
				tc.edit(&status)
				if err := e.update(status); err == nil || err.Error() != tc.want {
					t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
				}
			}

			stranger := newTestExecutorAs(t, a, mt, "other-framework", eid)
			if err := stranger.send(calls.Heartbeat()); err != nil {
				t.Errorf("HEARTBEAT for an unknown framework: %v, want 202 (no lookup)", err)
			}
			if _, err := stranger.subscribe(nil, nil); err == nil || err.Error() != malformed+"Framework cannot be found" {
				t.Errorf("SUBSCRIBE for an unknown framework: %v", err)
			}
			if _, err := newTestExecutorAs(t, a, mt, fid, "other-executor").subscribe(nil, nil); err == nil || err.Error() != malformed+"Executor cannot be found" {
				t.Errorf("SUBSCRIBE for an unknown executor: %v", err)
			}
			if n := len(a.Violations()); n != 7 {
				t.Errorf("%d violations, want 7: %q", n, a.Violations())
			}
		})
	}
}
