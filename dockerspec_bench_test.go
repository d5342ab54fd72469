package main

import (
	"fmt"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// singularityInput is a TaskInfo shaped like a busy production deploy: a
// bridge network with two port mappings, host and Docker volumes, Docker
// parameters, task labels, a shell command and a 30-variable executor
// environment, with CPU and memory limits applied.
func singularityInput() specInput {
	in := testInput()
	in.Settings = &Config{ForceCpuLimit: true, ForceMemoryLimit: true}
	in.Task.Resources = []mesos.Resource{
		scalarResource("cpus", 1.5),
		scalarResource("mem", 768),
		portsResource(mesos.Value_Range{Begin: 31000, End: 31001}),
	}
	withPortMappings(&in, portMapping(31000, 8080, "tcp"), portMapping(31001, 8443, ""))
	withVolume(&in, hostVolume("/etc/billing", "/etc/billing", mesos.RO))
	withVolume(&in, hostVolume("/var/log/billing", "/var/log/billing", mesos.RW))
	withVolume(&in, dockerVolume("billing-cache", "local", "/cache", mesos.RW))
	withParameters(&in,
		"label", "ServiceName=billing",
		"label", "HealthCheck=HttpGet",
		"label", "HealthCheckArgs=http://{{ host }}:{{ tcp 8080 }}/health",
		"env", "JAVA_OPTS=-Xmx512m",
		"log-opt", "max-size=10m",
		"cap-add", "NET_ADMIN",
		"stop-signal", "SIGTERM",
	)
	withLabels(&in, "executor.ShellCommand", `java -jar /app/billing.jar --port 8080 --admin-port "8443"`, "team", "payments")
	env := []string{"EXECUTOR_SIDECAR_BACKOFF", "2m", "EXECUTOR_KILL_TASK_TIMEOUT", "20", "TASK_HOST", "agent-17.example.com"}
	for i := 0; len(env) < 60; i++ {
		env = append(env, fmt.Sprintf("APP_SETTING_%02d", i), fmt.Sprintf("value-%d-with-some-length", i))
	}
	withExecutorEnvironment(&in, env...)
	return in
}

// BenchmarkBuildContainerSpec measures the TaskInfo → Docker container
// mapping, which runs once per launch.
func BenchmarkBuildContainerSpec(b *testing.B) {
	inputs := []struct {
		name string
		in   func() specInput
	}{
		{"minimal", testInput},
		{"singularity", singularityInput},
	}
	for _, input := range inputs {
		b.Run(input.name, func(b *testing.B) {
			in := input.in()
			if spec, err := buildContainerSpec(in); err != nil {
				b.Fatalf("buildContainerSpec: %v", err)
			} else if len(spec.Warnings) != 0 {
				b.Fatalf("unexpected warnings %q: the benchmark input should map cleanly", spec.Warnings)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := buildContainerSpec(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
