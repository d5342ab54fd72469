package mesostest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// CallRecord is one HTTP request the agent answered.
type CallRecord struct {
	Type        executor.Call_Type // meaningful when Decoded
	Decoded     bool               // the body was decoded into a Call
	Time        time.Time
	Method      string
	Path        string
	StatusCode  int
	Body        string // the error body; empty for 200 and 202
	ContentType string // request Content-Type
	Accept      string // request Accept values, comma-joined
	Subscribe   *executor.Call_Subscribe
	// OnSubscriptionConn is set for a request that arrived on a connection
	// that had carried a SUBSCRIBE.
	OnSubscriptionConn bool
}

const maxBodyBytes = 64 << 20

// connInfo is what the agent knows about one TCP connection.
type connInfo struct {
	conn             net.Conn
	carriedSubscribe bool // guarded by Agent.mu
}

type connKey struct{}

func (a *Agent) connContext(ctx context.Context, c net.Conn) context.Context {
	ci := &connInfo{conn: c}
	a.mu.Lock()
	a.conns[c] = ci
	a.mu.Unlock()
	return context.WithValue(ctx, connKey{}, ci)
}

func (a *Agent) connState(c net.Conn, state http.ConnState) {
	if state == http.StateClosed || state == http.StateHijacked {
		a.mu.Lock()
		delete(a.conns, c)
		a.mu.Unlock()
	}
}

// reply is the agent's answer to one request.
type reply struct {
	status int
	body   string
	header http.Header
	stream *stream // SUBSCRIBE accepted: serve this stream
	after  func()  // work queued on the actor once the reply is recorded
}

func textReply(status int, body string) reply { return reply{status: status, body: body} }

func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		http.Error(w, "agent is closed", http.StatusServiceUnavailable)
		return
	}
	a.handlerWG.Add(1)
	a.mu.Unlock()
	defer a.handlerWG.Done()
	if isStatePath(r.URL.Path) {
		a.serveState(w, r)
		return
	}

	rec := CallRecord{
		Time:        time.Now(),
		Method:      r.Method,
		Path:        r.URL.Path,
		ContentType: r.Header.Get("Content-Type"),
		Accept:      strings.Join(r.Header.Values("Accept"), ", "),
	}
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	res := a.handle(r, &rec)

	a.mu.Lock()
	rec.StatusCode = res.status
	if res.status >= 300 {
		rec.Body = res.body
	}
	if ci != nil {
		rec.OnSubscriptionConn = ci.carriedSubscribe
		if res.stream != nil {
			ci.carriedSubscribe = true
		}
	}
	if res.stream != nil && res.stream.subscribed {
		// Counted here, with the call recorded, so that a test woken by
		// WaitForSubscriptions also finds the call in Calls.
		a.subscriptions++
	}
	a.recordLocked(rec)
	a.mu.Unlock()
	if res.after != nil {
		a.jobs.submit(res.after)
	}

	for k, v := range res.header {
		w.Header()[k] = v
	}
	if res.stream != nil {
		a.serveStream(w, r, res.stream)
		return
	}
	if res.body != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(res.body)))
	}
	w.WriteHeader(res.status)
	_, _ = io.WriteString(w, res.body) // a failed write is the client's problem
}

func (a *Agent) recordLocked(rec CallRecord) {
	a.calls = append(a.calls, rec)
	what := "undecoded call"
	if rec.Decoded {
		what = rec.Type.String()
	}
	// Error bodies name fields and IDs, never payload values.
	outcome := strconv.Itoa(rec.StatusCode)
	if rec.Body != "" {
		outcome += " " + rec.Body
	}
	a.logf("%s %s %s -> %s", rec.Method, rec.Path, what, outcome)
	c := rec.StatusCode
	if (c >= 400 && c < 500 && c != http.StatusUnauthorized && c != http.StatusForbidden) || c == http.StatusNotImplemented {
		a.violations = append(a.violations, fmt.Sprintf("%s %s (%s): %s", rec.Method, rec.Path, what, outcome))
	}
	if rec.OnSubscriptionConn && !(rec.Decoded && rec.Type == executor.Call_SUBSCRIBE) {
		a.violations = append(a.violations, fmt.Sprintf("%s %s (%s) sent on the subscription connection", rec.Method, rec.Path, what))
	}
	a.notifyLocked()
}

const (
	apiPath     = "/api/v1/executor"
	pidAPIPath  = "/slave(1)/api/v1/executor"
	unavailable = "Agent has not finished recovery"
)

// handle answers one request following the agent's order of checks (§1.4).
func (a *Agent) handle(r *http.Request, rec *CallRecord) reply {
	if r.URL.Path != apiPath && r.URL.Path != pidAPIPath {
		return reply{status: http.StatusNotFound}
	}
	a.mu.Lock()
	refuse := a.refuse
	a.mu.Unlock()
	if refuse == RefuseUnavailable { // row 1
		return textReply(http.StatusServiceUnavailable, unavailable)
	}
	if r.Method != http.MethodPost { // row 2
		res := textReply(http.StatusMethodNotAllowed,
			fmt.Sprintf("405 Method Not Allowed. Expecting one of { 'POST' }, but received '%s'.", r.Method))
		res.header = http.Header{"Allow": {"POST"}}
		return res
	}
	if a.cfg.AuthToken != "" && r.Header.Get("Authorization") != "Bearer "+a.cfg.AuthToken { // row 3
		return reply{status: http.StatusUnauthorized,
			header: http.Header{"Www-Authenticate": {`Bearer realm="mesos-agent-executor"`}}}
	}
	contentType, hasContentType := r.Header["Content-Type"]
	if !hasContentType { // row 4
		return textReply(http.StatusBadRequest, "Expecting 'Content-Type' to be present")
	}
	if contentType[0] != string(codecs.MediaTypeProtobuf) && contentType[0] != string(codecs.MediaTypeJSON) { // row 8
		return textReply(http.StatusUnsupportedMediaType,
			"Expecting 'Content-Type' of application/json or application/x-protobuf")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return textReply(http.StatusBadRequest, "Failed to read body: "+err.Error())
	}
	call, typePresent, err := decodeCall(contentType[0], body) // rows 5–7
	if err != nil {
		return textReply(http.StatusBadRequest, err.Error())
	}
	rec.Decoded, rec.Type = true, call.Type
	if call.Type == executor.Call_SUBSCRIBE && call.Subscribe != nil {
		sub := *call.Subscribe
		rec.Subscribe = &sub
	}

	if reason := validateCall(call, typePresent); reason != "" { // row 9
		return textReply(http.StatusBadRequest, "Failed to validate Executor::Call: "+reason)
	}
	var streamCodec = codecs.ByMediaType[codecs.MediaTypeJSON]
	if call.Type == executor.Call_SUBSCRIBE { // row 10
		mt, ok := negotiateStream(r.Header.Values("Accept"))
		if !ok {
			return textReply(http.StatusNotAcceptable,
				"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")
		}
		streamCodec = codecs.ByMediaType[mt]
	}
	if call.Type == executor.Call_HEARTBEAT { // row 11
		return reply{status: http.StatusAccepted}
	}

	if res, refused := a.lookup(call); refused {
		return res
	}
	switch call.Type {
	case executor.Call_SUBSCRIBE:
		conn, _ := r.Context().Value(connKey{}).(*connInfo)
		return a.subscribeReply(call, streamCodec, conn)
	case executor.Call_UPDATE:
		status := call.Update.Status
		return reply{status: http.StatusAccepted, after: func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.processUpdateLocked(status, "call")
		}}
	case executor.Call_MESSAGE:
		a.mu.Lock()
		a.messages = append(a.messages, call.Message.Data)
		a.mu.Unlock()
		return reply{status: http.StatusAccepted}
	}
	return reply{status: http.StatusNotImplemented}
}

// lookup finds the call's framework and executor (§1.4 rows 13, 14, 16).
func (a *Agent) lookup(call *executor.Call) (reply, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case call.FrameworkID.Value != a.cfg.FrameworkID:
		return textReply(http.StatusBadRequest, "Framework cannot be found"), true
	case call.ExecutorID.Value != a.cfg.ExecutorID || a.execState == executorTerminated:
		return textReply(http.StatusBadRequest, "Executor cannot be found"), true
	case call.Type != executor.Call_SUBSCRIBE && a.execState == executorRegistering:
		return textReply(http.StatusForbidden, "Executor is not subscribed"), true
	}
	return reply{}, false
}

// subscribeReply runs the subscription on the actor, after every update
// already answered 202, and returns the stream to serve.
func (a *Agent) subscribeReply(call *executor.Call, codec encoding.Codec, ci *connInfo) reply {
	var s *stream
	ran := a.jobs.do(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.closed {
			return
		}
		a.streamSeq++
		s = newStream(a.streamSeq, codec, ci)
		a.subscribeLocked(call, s)
	})
	if !ran || s == nil {
		return textReply(http.StatusServiceUnavailable, "agent stopped before the subscription was processed")
	}
	return reply{status: http.StatusOK, stream: s}
}
