package main

// dockerspec_volumes.go owns the container's mounts (the sandbox, host
// paths, Docker volumes and the volume driver) and its CPU and memory
// limits from the task's resources (TaskInfo.limits: applyLimits in
// dockerspec_params_resources.go). No I/O.

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// dockerVolumeNamePattern is Docker's rule for named volumes; anything else
// in the first part of a bind (notably a leading '/') would be taken for a
// host path.
var dockerVolumeNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// checkMountPath refuses paths that would be misread in a Docker bind
// ("source:target:mode") or that climb out of where they point.
func checkMountPath(field, mountPath string) error {
	switch {
	case strings.ContainsRune(mountPath, 0):
		return taskErrorf("%s %q contains a NUL byte", field, mountPath)
	case strings.ContainsRune(mountPath, ':'):
		return taskErrorf("%s %q contains ':', which Docker binds cannot carry", field, mountPath)
	}
	for _, element := range strings.Split(mountPath, "/") {
		if element == ".." {
			return taskErrorf("%s %q contains a '..' element", field, mountPath)
		}
	}
	return nil
}

func (b *specBuilder) applyVolumes() error {
	mountedAt := map[string]string{} // container path -> field that mounts it
	if sandbox := b.in.HostSandbox; sandbox != "" {
		if !path.IsAbs(sandbox) || strings.ContainsAny(sandbox, ":\x00") {
			return fmt.Errorf("the task sandbox MESOS_DIRECTORY=%q is not an absolute path usable in a Docker bind", sandbox)
		}
		b.hostConfig.Binds = append(b.hostConfig.Binds, sandbox+":"+containerSandboxPath+":rw")
		mountedAt[containerSandboxPath] = "the task sandbox"
	}
	volumeDriverField := b.volumeDriverField
	if driver := b.dockerInfo.GetVolumeDriver(); driver != "" {
		if b.hostConfig.VolumeDriver != "" && b.hostConfig.VolumeDriver != driver {
			return taskErrorf("container.docker.volume_driver %q differs from driver %q of %s: Only one volume driver per task is supported", driver, b.hostConfig.VolumeDriver, volumeDriverField)
		}
		b.hostConfig.VolumeDriver = driver
		volumeDriverField = "container.docker.volume_driver"
	}
	for i, volume := range b.container.Volumes {
		field := fmt.Sprintf("container.volumes[%d]", i)
		var mode string
		switch volume.GetMode() {
		case mesos.RW:
			mode = "rw"
		case mesos.RO:
			mode = "ro"
		default:
			return taskErrorf("%s.mode %d is not RW or RO", field, int32(volume.GetMode()))
		}
		containerPath := volume.ContainerPath
		if containerPath == "" {
			return taskErrorf("%s.container_path is empty", field)
		}
		if err := checkMountPath(field+".container_path", containerPath); err != nil {
			return err
		}
		target := path.Clean(containerPath)
		if !path.IsAbs(containerPath) {
			target = path.Join(containerSandboxPath, containerPath)
		}

		var source string
		switch dockerVolume := volume.GetSource().GetDockerVolume(); {
		case volume.HostPath != nil:
			hostPath := *volume.HostPath
			if hostPath == "" {
				return taskErrorf("%s.host_path is empty", field)
			}
			if err := checkMountPath(field+".host_path", hostPath); err != nil {
				return err
			}
			source = path.Clean(hostPath)
			if !path.IsAbs(hostPath) {
				// As Mesos: a relative host path is in the sandbox, and
				// mapping it to a relative container path (also in the
				// sandbox) is refused.
				if !path.IsAbs(containerPath) {
					return taskErrorf("%s: host_path %q and container_path %q are both relative", field, hostPath, containerPath)
				}
				if b.in.HostSandbox == "" {
					return taskErrorf("%s.host_path %q is relative to the sandbox, but the sandbox directory is unknown", field, hostPath)
				}
				source = path.Join(b.in.HostSandbox, hostPath)
			}
		case dockerVolume != nil:
			if !dockerVolumeNamePattern.MatchString(dockerVolume.Name) {
				return taskErrorf("%s.source.docker_volume.name %q is not a valid Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)", field, dockerVolume.Name)
			}
			if driver := dockerVolume.GetDriver(); driver != "" {
				if b.hostConfig.VolumeDriver != "" && b.hostConfig.VolumeDriver != driver {
					return taskErrorf("%s.source.docker_volume.driver %q differs from driver %q of %s: Only one volume driver per task is supported", field, driver, b.hostConfig.VolumeDriver, volumeDriverField)
				}
				b.hostConfig.VolumeDriver = driver
				volumeDriverField = field + ".source.docker_volume.driver"
			}
			if len(dockerVolume.GetDriverOptions().GetParameter()) > 0 {
				b.warnf("%s.source.docker_volume.driver_options ignored: Docker applies driver options only when a volume is created with `docker volume create`", field)
			}
			source = dockerVolume.Name
		default:
			return taskErrorf("%s (container_path %q) has neither host_path nor source.docker_volume; only host paths and Docker volumes can be mounted", field, volume.ContainerPath)
		}
		if other, taken := mountedAt[target]; taken {
			return taskErrorf("%s: container path %q is already mounted by %s", field, target, other)
		}
		mountedAt[target] = field
		b.hostConfig.Binds = append(b.hostConfig.Binds, source+":"+target+":"+mode)
	}
	return nil
}

const (
	// cfsPeriod is the CFS period in microseconds (the kernel default);
	// minCFSQuota and minCPUShares are the minimums Mesos applies.
	cfsPeriod    = 100000
	minCFSQuota  = 1000
	minCPUShares = 2
	// maxTaskCPUs and maxTaskMemoryMB keep the Docker values far from
	// int64 overflow; no machine comes close to them.
	maxTaskCPUs     = 1 << 20
	maxTaskMemoryMB = 1 << 40
)

// taskScalar sums the task's scalar resources of one name.
func taskScalar(taskResources []mesos.Resource, name string) (float64, bool, error) {
	total := 0.0
	found := false
	for i, resource := range taskResources {
		if resource.Name != name {
			continue
		}
		if resource.Scalar == nil {
			return 0, false, taskErrorf("resources[%d] (%s) has no scalar value", i, name)
		}
		value := resource.Scalar.Value
		if math.IsNaN(value) || math.IsInf(value, 0) || value < 0 {
			return 0, false, taskErrorf("resources[%d] (%s) is %v; it must be a finite number not below zero", i, name, value)
		}
		total += value
		found = true
	}
	return total, found, nil
}

func (b *specBuilder) applyResources() error {
	cpus, haveCPUs, err := taskScalar(b.task.Resources, "cpus")
	if err != nil {
		return err
	}
	memoryMB, haveMemory, err := taskScalar(b.task.Resources, "mem")
	if err != nil {
		return err
	}
	if cpus > maxTaskCPUs {
		return taskErrorf("resources: cpus %v is more than %d", cpus, maxTaskCPUs)
	}
	if memoryMB > maxTaskMemoryMB {
		return taskErrorf("resources: mem %v MB is more than %d MB", memoryMB, int64(maxTaskMemoryMB))
	}
	if b.settings.ForceCpuLimit {
		switch {
		case !haveCPUs:
			b.warnf("resources: the task has no cpus resource; no CPU limit applied despite %s_FORCE_CPU_LIMIT", envPrefix)
		case b.settings.UseCpuShares:
			b.hostConfig.CPUShares = max(int64(math.Round(cpus*1024)), minCPUShares)
		default:
			b.hostConfig.CPUPeriod = cfsPeriod
			b.hostConfig.CPUQuota = max(int64(math.Round(cpus*cfsPeriod)), minCFSQuota)
		}
	}
	if b.settings.ForceMemoryLimit {
		memoryBytes := int64(math.Round(memoryMB * (1 << 20)))
		if !haveMemory || memoryBytes == 0 {
			b.warnf("resources: the task's mem resource is missing or zero; no memory limit applied despite %s_FORCE_MEMORY_LIMIT", envPrefix)
		} else {
			b.hostConfig.Memory = memoryBytes
			// Equal to Memory: no swap, so a task over its limit is
			// OOM-killed rather than swapping.
			b.hostConfig.MemorySwap = memoryBytes
		}
	}
	return b.applyLimits(cpus, haveCPUs, memoryMB, haveMemory)
}
