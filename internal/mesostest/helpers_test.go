package mesostest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
)

// waitTimeout bounds every wait in these tests; nothing here should take
// more than a fraction of it.
const waitTimeout = 10 * time.Second

var mediaTypes = []encoding.MediaType{codecs.MediaTypeProtobuf, codecs.MediaTypeJSON}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testExecutor is a minimal executor built from mesos-go's client the way a
// real one is: a dedicated connection for SUBSCRIBE, another for calls.
type testExecutor struct {
	t          *testing.T
	agent      *Agent
	subscriber calls.Sender
	caller     calls.Sender

	mu   sync.Mutex
	subs []*subscription
}

func newTestExecutor(t *testing.T, a *Agent, mt encoding.MediaType, opts ...httpcli.Opt) *testExecutor {
	cfg := a.Config()
	return newTestExecutorAs(t, a, mt, cfg.FrameworkID, cfg.ExecutorID, opts...)
}

// newTestExecutorAs makes an executor that sends the given framework and
// executor IDs in its calls.
func newTestExecutorAs(t *testing.T, a *Agent, mt encoding.MediaType, frameworkID, executorID string, opts ...httpcli.Opt) *testExecutor {
	cli := httpcli.New(append([]httpcli.Opt{
		httpcli.Endpoint(a.URL()),
		httpcli.Codec(codecs.ByMediaType[mt]),
		httpcli.Do(httpcli.With(httpcli.Timeout(5 * time.Second))),
	}, opts...)...)
	callOptions := executor.CallOptions{calls.Framework(frameworkID), calls.Executor(executorID)}
	e := &testExecutor{
		t:          t,
		agent:      a,
		subscriber: calls.SenderWith(httpexec.NewSender(cli.Send, httpcli.Close(true)), callOptions...),
		caller:     calls.SenderWith(httpexec.NewSender(cli.Send), callOptions...),
	}
	// Registered after NewAgent's cleanup, so it runs first: readers end
	// before the agent is closed.
	t.Cleanup(func() {
		e.mu.Lock()
		subs := e.subs
		e.mu.Unlock()
		for _, s := range subs {
			s.close()
		}
	})
	return e
}

// subscription is one open SUBSCRIBE stream, decoded by a goroutine.
type subscription struct {
	resp   mesos.Response
	events chan executor.Event // closed when the stream ends
	done   chan struct{}       // closed to stop the reader
	ended  chan struct{}       // closed when the reader has returned
	err    error               // why the stream ended; read after ended is closed
	once   sync.Once
}

func (e *testExecutor) subscribe(tasks []mesos.TaskInfo, updates []executor.Call_Update) (*subscription, error) {
	resp, err := e.subscriber.Send(context.Background(), calls.NonStreaming(calls.Subscribe(tasks, updates)))
	if err != nil {
		if resp != nil {
			resp.Close()
		}
		return nil, err
	}
	s := &subscription{
		resp:   resp,
		events: make(chan executor.Event),
		done:   make(chan struct{}),
		ended:  make(chan struct{}),
	}
	go func() {
		defer close(s.ended)
		defer close(s.events)
		for {
			var ev executor.Event
			if err := resp.Decode(&ev); err != nil {
				s.err = err
				return
			}
			select {
			case s.events <- ev:
			case <-s.done:
				return
			}
		}
	}()
	e.mu.Lock()
	e.subs = append(e.subs, s)
	e.mu.Unlock()
	return s, nil
}

func (e *testExecutor) mustSubscribe(tasks []mesos.TaskInfo, updates []executor.Call_Update) *subscription {
	e.t.Helper()
	s, err := e.subscribe(tasks, updates)
	if err != nil {
		e.t.Fatalf("SUBSCRIBE: %v", err)
	}
	ev := s.next(e.t)
	if ev.Type != executor.Event_SUBSCRIBED {
		e.t.Fatalf("first event is %v, want SUBSCRIBED", ev.Type)
	}
	return s
}

func (s *subscription) close() {
	s.once.Do(func() {
		close(s.done)
		s.resp.Close()
		<-s.ended
	})
}

// nextAny returns the next event, whatever its type.
func (s *subscription) nextAny(t *testing.T) executor.Event {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			<-s.ended
			t.Fatalf("stream ended while waiting for an event: %v", s.err)
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no event within %v", waitTimeout)
	}
	panic("unreachable")
}

// next returns the next event other than HEARTBEAT.
func (s *subscription) next(t *testing.T) executor.Event {
	t.Helper()
	for {
		if ev := s.nextAny(t); ev.Type != executor.Event_HEARTBEAT {
			return ev
		}
	}
}

func (s *subscription) expect(t *testing.T, want executor.Event_Type) executor.Event {
	t.Helper()
	ev := s.next(t)
	if ev.Type != want {
		t.Fatalf("got event %v, want %v", ev.Type, want)
	}
	return ev
}

// waitEnd waits for the agent to end the stream and returns the reader's error.
func (s *subscription) waitEnd(t *testing.T) error {
	t.Helper()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				<-s.ended
				return s.err
			}
			if ev.Type != executor.Event_HEARTBEAT {
				t.Fatalf("got event %v while waiting for the stream to end", ev.Type)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("stream still open after %v", waitTimeout)
		}
	}
}

// status builds a well-formed executor update.
func (e *testExecutor) status(taskID string, state mesos.TaskState) mesos.TaskStatus {
	id := uuid.New()
	return mesos.TaskStatus{
		TaskID:     mesos.TaskID{Value: taskID},
		State:      state.Enum(),
		Source:     mesos.SOURCE_EXECUTOR.Enum(),
		ExecutorID: &mesos.ExecutorID{Value: e.agent.Config().ExecutorID},
		Timestamp:  ptr(float64(time.Now().UnixNano()) / 1e9),
		UUID:       id[:],
	}
}

func (e *testExecutor) update(status mesos.TaskStatus) error {
	return calls.SendNoData(context.Background(), e.caller, calls.NonStreaming(calls.Update(status)))
}

func (e *testExecutor) mustUpdate(status mesos.TaskStatus) {
	e.t.Helper()
	if err := e.update(status); err != nil {
		e.t.Fatalf("UPDATE %v: %v", status.GetState(), err)
	}
}

func (e *testExecutor) send(call *executor.Call) error {
	return calls.SendNoData(context.Background(), e.caller, calls.NonStreaming(call))
}

// expectAck reads events up to the ACKNOWLEDGED of status.
func (s *subscription) expectAck(t *testing.T, status mesos.TaskStatus) {
	t.Helper()
	ev := s.expect(t, executor.Event_ACKNOWLEDGED)
	if ev.Acknowledged.TaskID.Value != status.TaskID.Value || !bytes.Equal(ev.Acknowledged.UUID, status.UUID) {
		t.Fatalf("ACKNOWLEDGED %s/%x, want %s/%x", ev.Acknowledged.TaskID.Value, ev.Acknowledged.UUID, status.TaskID.Value, status.UUID)
	}
}

// barrier proves that no event was queued on the stream before it: it sends a
// MESSAGE and requires it to be the next event, heartbeats included (tests
// using it keep the default 30-minute heartbeat interval).
func (s *subscription) barrier(t *testing.T, a *Agent) {
	t.Helper()
	if err := a.Message([]byte("barrier")); err != nil {
		t.Fatalf("Message: %v", err)
	}
	ev := s.nextAny(t)
	if ev.Type != executor.Event_MESSAGE || string(ev.Message.Data) != "barrier" {
		t.Fatalf("got %v before the barrier MESSAGE", ev.Type)
	}
}

// rawClient bounds raw requests, so that a stream opened by mistake fails the
// test instead of hanging it.
var rawClient = &http.Client{Timeout: waitTimeout}

// rawPost sends one request with the given headers on a fresh connection.
func rawPost(t *testing.T, a *Agent, method string, header map[string]string, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.URL(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.Close = true
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func (a *Agent) subscriptionCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subscriptions
}

func (a *Agent) waitNoLiveStream(ctx context.Context) error {
	return a.waitFor(ctx, func() bool { return a.liveStreamLocked() == nil },
		func() string { return "stream still live" })
}

// launchedTask starts an agent with cfg, queues task "t1" and subscribes an
// executor speaking mt, which receives the task's LAUNCH.
func launchedTask(t *testing.T, cfg Config, mt encoding.MediaType) (*Agent, *testExecutor, *subscription) {
	t.Helper()
	a := NewAgent(t, cfg)
	e := newTestExecutor(t, a, mt)
	if err := a.Launch(a.NewTask("t1")); err != nil {
		t.Fatal(err)
	}
	s := e.mustSubscribe(nil, nil)
	s.expect(t, executor.Event_LAUNCH)
	return a, e, s
}
