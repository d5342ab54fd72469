package main

// outbox.go owns the status updates on their way to the agent: sendStatus
// queues them (coalescing superseded health verdicts), sendUpdates and
// deliver hand them over one at a time, in order, retrying until the agent
// accepts each, and onAcknowledged retires them. What is not yet
// acknowledged is replayed in every SUBSCRIBE (executor.go).

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	log "github.com/sirupsen/logrus"
)

const (
	// maxUpdateRetryDelay caps the pause between attempts to POST an update.
	maxUpdateRetryDelay = 2 * time.Second
)

type pendingUpdate struct {
	status   mesos.TaskStatus
	terminal bool
}

type unackedUpdate struct {
	seq    uint64
	update executor.Call_Update
}

// sendStatus queues an update and returns at once, whether or not the agent
// is there. Updates reach the agent in the order queued, except that a
// health verdict (a TASK_RUNNING with healthy set) still queued when a
// newer non-terminal update of the same task arrives is dropped: only the
// latest verdict matters, and an agent away for a long time must not make
// the outbox grow with every health change. State changes (STARTING,
// RUNNING, KILLING, terminal) are never dropped, and an update once handed
// to the agent stays until acknowledged (resent on resubscribe).
func (d *driver) sendStatus(status mesos.TaskStatus, terminal bool) {
	status.Source = mesos.SOURCE_EXECUTOR.Enum()
	status.ExecutorID = &mesos.ExecutorID{Value: d.mesosCfg.ExecutorID}
	id := uuid.New()
	status.UUID = id[:]
	now := float64(time.Now().UnixNano()) / 1e9
	status.Timestamp = &now
	fields := log.Fields{"task_id": status.TaskID.Value, "state": status.GetState().String(), "uuid": id.String()}
	if status.Reason != nil {
		fields["reason"] = status.GetReason().String()
	}
	if status.Healthy != nil {
		fields["healthy"] = status.GetHealthy()
	}
	d.logger.WithFields(fields).Info("status update: " + status.GetMessage())
	d.mu.Lock()
	if !isTerminalState(status.GetState()) {
		kept := d.outbox[:0]
		for _, queued := range d.outbox {
			if queued.status.TaskID.Value == status.TaskID.Value && queued.status.Healthy != nil && !isTerminalState(queued.status.GetState()) {
				d.logger.WithFields(log.Fields{"task_id": queued.status.TaskID.Value, "state": queued.status.GetState().String(),
					"uuid": uuidString(queued.status.UUID)}).Debug("dropping a queued status update: a newer one supersedes it")
				continue
			}
			kept = append(kept, queued)
		}
		clear(d.outbox[len(kept):])
		d.outbox = kept
	}
	d.outbox = append(d.outbox, pendingUpdate{status: status, terminal: terminal})
	d.mu.Unlock()
	select {
	case d.outboxWake <- struct{}{}:
	default:
	}
}

// isTerminalState is Mesos' protobuf::isTerminalState.
func isTerminalState(state mesos.TaskState) bool {
	switch state {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// sendUpdates delivers queued updates one at a time, in order, retrying
// until the agent accepts each one or a SUBSCRIBE carries it.
func (d *driver) sendUpdates(ctx context.Context) {
	for {
		d.mu.Lock()
		if len(d.outbox) > 0 {
			pending := d.outbox[0]
			d.outbox = slices.Delete(d.outbox, 0, 1)
			d.mu.Unlock()
			d.deliver(ctx, pending)
			continue
		}
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-d.outboxWake:
		}
	}
}

func (d *driver) deliver(ctx context.Context, pending pendingUpdate) {
	key := string(pending.status.UUID)
	update := executor.Call_Update{Status: pending.status}
	d.mu.Lock()
	d.updateSeq++
	seq := d.updateSeq
	d.unackedUpdates[key] = unackedUpdate{seq: seq, update: update}
	if pending.terminal {
		d.terminalUUID = key
	}
	d.mu.Unlock()

	logger := d.logger.WithFields(log.Fields{"task_id": pending.status.TaskID.Value, "state": pending.status.GetState().String()})
	delay := 50 * time.Millisecond
	for {
		d.mu.Lock()
		connected := d.connected
		carried := seq <= d.deliveredSeq
		d.mu.Unlock()
		if carried {
			logger.Debug("update delivered in SUBSCRIBE")
			return
		}
		select {
		case <-connected:
		case <-ctx.Done():
			return
		}
		resp, err := d.caller.Send(ctx, calls.NonStreaming(calls.Update(pending.status)))
		if resp != nil {
			resp.Close()
		}
		if err == nil {
			if pending.terminal {
				d.mu.Lock()
				d.markTerminalDeliveredLocked()
				d.mu.Unlock()
			}
			return
		}
		d.mu.Lock()
		_, unacked := d.unackedUpdates[key]
		d.mu.Unlock()
		if ctx.Err() != nil || !unacked {
			// The executor is exiting, or the agent acknowledged the
			// update before its answer to the POST arrived.
			return
		}
		logger.WithError(err).Warn("the agent did not accept the status update; retrying")
		if !sleepContext(ctx, delay) {
			return
		}
		if delay *= 2; delay > maxUpdateRetryDelay {
			delay = maxUpdateRetryDelay
		}
	}
}

func (d *driver) markTerminalDeliveredLocked() {
	select {
	case <-d.terminalDelivered:
	default:
		close(d.terminalDelivered)
	}
}

func (d *driver) onAcknowledged(ack *executor.Event_Acknowledged) {
	if ack == nil {
		return
	}
	key := string(ack.UUID)
	d.mu.Lock()
	_, known := d.unackedUpdates[key]
	delete(d.unackedUpdates, key)
	delete(d.unackedTasks, ack.TaskID.Value)
	terminal := key == d.terminalUUID
	d.mu.Unlock()
	fields := log.Fields{"task_id": ack.TaskID.Value, "uuid": uuidString(ack.UUID)}
	if !known {
		d.logger.WithFields(fields).Debug("acknowledgement for an update already acknowledged")
	} else {
		d.logger.WithFields(fields).Debug("update acknowledged")
	}
	if terminal {
		select {
		case <-d.terminalAcked:
		default:
			close(d.terminalAcked)
		}
	}
}

// newStatus builds a TaskStatus; sendStatus fills in the bookkeeping fields.
func newStatus(taskID mesos.TaskID, state mesos.TaskState, reason *mesos.TaskStatus_Reason, message string) mesos.TaskStatus {
	status := mesos.TaskStatus{TaskID: taskID, State: state.Enum(), Reason: reason}
	if message != "" {
		status.Message = &message
	}
	return status
}

func uuidString(b []byte) string {
	if id, err := uuid.FromBytes(b); err == nil {
		return id.String()
	}
	return fmt.Sprintf("%x", b)
}
