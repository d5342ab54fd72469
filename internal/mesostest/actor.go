package mesostest

import "sync"

// actor runs jobs one at a time in submission order on its own goroutine,
// like the agent's libprocess actor: an UPDATE is answered 202 first and
// processed afterwards, but never overtaken by a later UPDATE, SUBSCRIBE or
// executor termination.
type actor struct {
	mu      sync.Mutex
	queue   []func()
	wake    chan struct{} // capacity 1
	quit    chan struct{}
	done    chan struct{}
	stopped bool
}

func newActor() *actor {
	q := &actor{
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.run()
	return q
}

func (q *actor) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		jobs := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, job := range jobs {
			select {
			case <-q.quit:
				return
			default:
			}
			job()
		}
		select {
		case <-q.wake:
		case <-q.quit:
			return
		}
	}
}

// submit queues job; it reports false when the actor has stopped.
func (q *actor) submit(job func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return false
	}
	q.queue = append(q.queue, job)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// do runs job on the actor and waits for it; it reports false when the actor
// stopped before running it.
func (q *actor) do(job func()) bool {
	finished := make(chan struct{})
	if !q.submit(func() { job(); close(finished) }) {
		return false
	}
	select {
	case <-finished:
		return true
	case <-q.done:
		// The job may have been the last one the actor ran.
		select {
		case <-finished:
			return true
		default:
			return false
		}
	}
}

// stop discards queued jobs and waits for the running one to finish.
func (q *actor) stop() {
	q.mu.Lock()
	if !q.stopped {
		q.stopped = true
		close(q.quit)
	}
	q.mu.Unlock()
	<-q.done
}
