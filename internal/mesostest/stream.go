package mesostest

import (
	"net/http"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
)

// SentEvent is an event the agent wrote to a subscription stream.
type SentEvent struct {
	Event  executor.Event
	Stream int // 1 for the first successful SUBSCRIBE's stream, and so on
	Time   time.Time
}

// stream is one SUBSCRIBE response. Its queue is guarded by Agent.mu; the
// handler goroutine that owns the ResponseWriter drains it.
type stream struct {
	id         int
	codec      encoding.Codec
	conn       *connInfo // the connection carrying it
	queue      []outEvent
	wake       chan struct{} // capacity 1
	ended      bool          // no more events: the agent closed it or the write side broke
	finishing  bool          // write what is queued, then end (SUBSCRIBE refused with SHUTDOWN)
	subscribed bool          // starts with SUBSCRIBED
}

type outEvent struct {
	event executor.Event
	ackOf int // index in Agent.updates this ACKNOWLEDGED answers; -1 for other events
}

func newStream(id int, codec encoding.Codec, conn *connInfo) *stream {
	return &stream{id: id, codec: codec, conn: conn, wake: make(chan struct{}, 1)}
}

// liveStreamLocked returns the stream events can be sent on, if any.
func (a *Agent) liveStreamLocked() *stream {
	if a.stream == nil || a.stream.ended {
		return nil
	}
	return a.stream
}

func (s *stream) push(e outEvent) {
	s.queue = append(s.queue, e)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sendLocked queues an event on the live stream and reports whether there was
// one. Events for a stream that ends before they are written are lost, as they
// are with a real agent.
func (a *Agent) sendLocked(e executor.Event) bool {
	s := a.liveStreamLocked()
	if s == nil {
		return false
	}
	s.push(outEvent{event: e, ackOf: -1})
	return true
}

// endStreamLocked ends the current stream, if it is live.
func (a *Agent) endStreamLocked(why string) { a.endLocked(a.stream, why) }

func (a *Agent) endLocked(s *stream, why string) {
	if s == nil || s.ended {
		return
	}
	s.ended = true
	s.queue = nil
	select {
	case s.wake <- struct{}{}:
	default:
	}
	a.logf("stream %d closed: %s", s.id, why)
	a.notifyLocked()
}

// serveStream writes the SUBSCRIBE response: 200, chunked (no
// Content-Length), Content-Type the negotiated media type, one RecordIO
// record per event, flushed per record, plus periodic HEARTBEAT events.
func (a *Agent) serveStream(w http.ResponseWriter, r *http.Request, s *stream) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", string(s.codec.Type))
	w.WriteHeader(http.StatusOK)
	// Flushing the header commits the response to chunked encoding even if
	// the stream ends before its first event.
	if err := rc.Flush(); err != nil {
		a.mu.Lock()
		a.endLocked(s, "write failed: "+err.Error())
		a.mu.Unlock()
		return
	}
	enc := s.codec.NewEncoder(func() framing.Writer { return recordio.NewWriter(w) })
	heartbeat := time.NewTicker(a.cfg.HeartbeatInterval)
	defer heartbeat.Stop()

	write := func(e outEvent) bool {
		err := enc.Encode(&e.event)
		if err == nil {
			err = rc.Flush()
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			a.endLocked(s, "write failed: "+err.Error())
			return false
		}
		a.events = append(a.events, SentEvent{Event: e.event, Stream: s.id, Time: time.Now()})
		if e.ackOf >= 0 {
			a.updates[e.ackOf].Acked = true
		}
		a.notifyLocked()
		return true
	}

	for {
		a.mu.Lock()
		batch, ended, finishing := s.queue, s.ended, s.finishing
		s.queue = nil
		a.mu.Unlock()
		if ended {
			return
		}
		for _, e := range batch {
			if !write(e) {
				return
			}
		}
		if finishing {
			a.mu.Lock()
			a.endLocked(s, "SUBSCRIBE refused")
			a.mu.Unlock()
			return
		}
		select {
		case <-s.wake:
		case <-heartbeat.C:
			if !write(outEvent{event: executor.Event{Type: executor.Event_HEARTBEAT}, ackOf: -1}) {
				return
			}
		case <-a.quit:
			// A pipelined request on this connection stops Go's server from
			// noticing the connection closing, so Close also ends streams
			// directly.
			return
		case <-r.Context().Done():
			a.mu.Lock()
			a.endLocked(s, "executor closed the connection")
			a.mu.Unlock()
			return
		}
	}
}
