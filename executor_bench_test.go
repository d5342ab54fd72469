package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
)

// benchUpdateCall is an UPDATE call as the driver sends it: a health-check
// TASK_RUNNING with the bookkeeping fields sendStatus fills in and a
// container IP, framework and executor IDs set as calls.SenderWith does.
func benchUpdateCall() *executor.Call {
	healthy := true
	status := newStatus(mesos.TaskID{Value: "billing.2026-11-23T07.00.01-1-agent17-us_east_1a"}, mesos.TASK_RUNNING,
		mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), `service 3f2b9c81d4e7 on Sidecar host "agent-17.example.com" is ALIVE`)
	status.Healthy = &healthy
	status.Source = mesos.SOURCE_EXECUTOR.Enum()
	status.ExecutorID = &mesos.ExecutorID{Value: "billing.2026-11-23T07.00.01-1-agent17-us_east_1a"}
	id := uuid.New()
	status.UUID = id[:]
	now := float64(time.Now().UnixNano()) / 1e9
	status.Timestamp = &now
	ip := "172.17.0.5"
	status.ContainerStatus = &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{
		IPAddresses: []mesos.NetworkInfo_IPAddress{{Protocol: mesos.IPv4.Enum(), IPAddress: &ip}},
	}}}
	return calls.Update(status).With(
		calls.Framework("5bd5a5f4-3d54-4f1c-9b1e-2a1c0f7e9d21-0000"),
		calls.Executor("billing.2026-11-23T07.00.01-1-agent17-us_east_1a"),
	)
}

// BenchmarkStatusUpdateEncode measures encoding one UPDATE call into a
// request body the way mesos-go's httpcli does (a fresh encoder over a
// bytes.Buffer per call), with the protobuf codec the executor uses and,
// for comparison, the JSON one.
func BenchmarkStatusUpdateEncode(b *testing.B) {
	for _, mediaType := range []encoding.MediaType{codecs.MediaTypeProtobuf, codecs.MediaTypeJSON} {
		codec := codecs.ByMediaType[mediaType]
		b.Run(codec.Name, func(b *testing.B) {
			call := benchUpdateCall()
			var probe bytes.Buffer
			if err := codec.NewEncoder(encoding.SinkWriter(&probe)).Encode(call); err != nil || probe.Len() == 0 {
				b.Fatalf("encode: %v (%d bytes)", err, probe.Len())
			}
			b.ReportAllocs()
			b.ReportMetric(float64(probe.Len()), "bytes/call")
			for b.Loop() {
				var body bytes.Buffer
				if err := codec.NewEncoder(encoding.SinkWriter(&body)).Encode(call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
