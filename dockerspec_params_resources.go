package main

// dockerspec_params_resources.go owns the resource options among the
// container.docker.parameters (CPU, memory, ulimits, pids, OOM, block I/O,
// storage) and TaskInfo.limits, applied the way Mesos' Docker containerizer
// applies them. Parameters come after Mesos' own options on its command
// line, so a parameter overrides what the task's resources and limits set.
// No I/O.

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"

	units "github.com/docker/go-units"
	docker "github.com/fsouza/go-dockerclient"
)

// resourceParameters holds the resource options given as parameters; they
// are applied after the task's resources and limits (applyParameterOverrides).
type resourceParameters struct {
	set func(*docker.HostConfig) // nil when no resource parameter was given
	// which flags were given, for the coherence checks' messages
	fields map[string]string
}

// then queues a change to the HostConfig, remembering which flag made it.
func (r *resourceParameters) then(p parameter, change func(*docker.HostConfig)) {
	previous := r.set
	r.set = func(h *docker.HostConfig) {
		if previous != nil {
			previous(h)
		}
		change(h)
	}
	if r.fields == nil {
		r.fields = map[string]string{}
	}
	r.fields[p.key] = p.field
}

var resourceParameterHandlers = map[string]parameterHandler{
	"cpus":               (*specBuilder).paramCPUs,
	"cpu-shares":         (*specBuilder).paramCPUShares,
	"cpu-quota":          (*specBuilder).paramCPUQuota,
	"cpu-period":         (*specBuilder).paramCPUPeriod,
	"cpuset-cpus":        (*specBuilder).paramCpuset,
	"cpuset-mems":        (*specBuilder).paramCpuset,
	"memory":             (*specBuilder).paramMemory,
	"memory-swap":        (*specBuilder).paramMemorySwap,
	"memory-reservation": (*specBuilder).paramMemoryReservation,
	"memory-swappiness":  (*specBuilder).paramMemorySwappiness,
	"shm-size":           (*specBuilder).paramShmSize,
	"ulimit":             (*specBuilder).paramUlimit,
	"pids-limit":         (*specBuilder).paramPidsLimit,
	"oom-score-adj":      (*specBuilder).paramOomScoreAdj,
	"oom-kill-disable":   (*specBuilder).paramOomKillDisable,
	"blkio-weight":       (*specBuilder).paramBlkioWeight,
	"storage-opt":        (*specBuilder).paramStorageOpt,
}

// minMemoryBytes is the smallest memory limit Docker accepts (6 MiB).
const minMemoryBytes = 6 << 20

func (b *specBuilder) paramCPUs(p parameter) error {
	// As the CLI: a decimal number of CPUs, kept exact to the nano-CPU.
	rat, ok := new(big.Rat).SetString(p.value)
	if !ok || rat.Sign() <= 0 {
		return p.invalid("%q is not a positive number of CPUs (e.g. 1.5)", p.value)
	}
	nano := rat.Mul(rat, big.NewRat(1e9, 1))
	if !nano.IsInt() || nano.Num().Cmp(big.NewInt(int64(maxTaskCPUs)*1e9)) > 0 {
		return p.invalid("%q: give at most 9 decimals and at most %d CPUs", p.value, maxTaskCPUs)
	}
	nanoCPUs := nano.Num().Int64()
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.NanoCPUs = nanoCPUs })
	return nil
}

func (b *specBuilder) paramCPUShares(p parameter) error {
	shares, err := strconv.ParseInt(p.value, 10, 64)
	if err != nil || shares < 0 || shares > 262144 {
		return p.invalid("%q is not a number of CPU shares between 0 and 262144", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.CPUShares = shares })
	return nil
}

func (b *specBuilder) paramCPUQuota(p parameter) error {
	quota, err := strconv.ParseInt(p.value, 10, 64)
	if err != nil || (quota != -1 && quota < 1000) {
		return p.invalid("%q is not a CFS quota in microseconds (at least 1000, or -1 for none)", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.CPUQuota = quota })
	return nil
}

func (b *specBuilder) paramCPUPeriod(p parameter) error {
	period, err := strconv.ParseInt(p.value, 10, 64)
	if err != nil || period < 1000 || period > 1000000 {
		return p.invalid("%q is not a CFS period in microseconds between 1000 and 1000000", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.CPUPeriod = period })
	return nil
}

// cpusetPattern is the kernel's list syntax: 0-3,5,7-8.
var cpusetPattern = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)

func (b *specBuilder) paramCpuset(p parameter) error {
	if !cpusetPattern.MatchString(p.value) {
		return p.invalid("%q is not a list such as 0-3,5", p.value)
	}
	value := p.value
	if p.key == "cpuset-cpus" {
		b.resourceParams.then(p, func(h *docker.HostConfig) { h.CPUSetCPUs = value })
	} else {
		b.resourceParams.then(p, func(h *docker.HostConfig) { h.CPUSetMEMs = value })
	}
	return nil
}

// sizeValue parses a memory-like size as the CLI does: a number with an
// optional b, k, m, g, t or p suffix, in binary units.
func (p parameter) sizeValue() (int64, error) {
	size, err := units.RAMInBytes(p.value)
	if err != nil || size < 0 {
		return 0, p.invalid("%q is not a size (a number with an optional unit b, k, m, g, t or p, e.g. 512m)", p.value)
	}
	return size, nil
}

func (b *specBuilder) paramMemory(p parameter) error {
	size, err := p.sizeValue()
	if err != nil {
		return err
	}
	if size < minMemoryBytes {
		return p.invalid("%q is below Docker's minimum memory limit of 6m", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.Memory = size })
	return nil
}

func (b *specBuilder) paramMemorySwap(p parameter) error {
	size := int64(-1)
	if p.value != "-1" {
		var err error
		if size, err = p.sizeValue(); err != nil {
			return p.invalid("%q is not a size (e.g. 1g) or -1 for unlimited swap", p.value)
		}
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.MemorySwap = size })
	return nil
}

func (b *specBuilder) paramMemoryReservation(p parameter) error {
	size, err := p.sizeValue()
	if err != nil {
		return err
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.MemoryReservation = size })
	return nil
}

func (b *specBuilder) paramMemorySwappiness(p parameter) error {
	swappiness, err := strconv.ParseInt(p.value, 10, 64)
	if err != nil || swappiness < -1 || swappiness > 100 {
		return p.invalid("%q is not a swappiness between 0 and 100 (or -1 for the host's)", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) {
		if swappiness == -1 {
			h.MemorySwappiness = nil
		} else {
			h.MemorySwappiness = &swappiness
		}
	})
	return nil
}

func (b *specBuilder) paramShmSize(p parameter) error {
	size, err := p.sizeValue()
	if err != nil {
		return err
	}
	if size == 0 {
		return p.invalid("%q: the size of /dev/shm must be above zero (omit it for Docker's 64m)", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.ShmSize = size })
	return nil
}

// paramUlimit parses NAME=SOFT[:HARD] with go-units; a name given twice
// keeps its last limits, in the place it was first given.
func (b *specBuilder) paramUlimit(p parameter) error {
	ulimit, err := units.ParseUlimit(p.value)
	if err != nil {
		return p.invalid("%q is not NAME=SOFT[:HARD]: %v", p.value, err)
	}
	limit := docker.ULimit{Name: ulimit.Name, Soft: ulimit.Soft, Hard: ulimit.Hard}
	b.resourceParams.then(p, func(h *docker.HostConfig) {
		for i := range h.Ulimits {
			if h.Ulimits[i].Name == limit.Name {
				h.Ulimits[i] = limit
				return
			}
		}
		h.Ulimits = append(h.Ulimits, limit)
	})
	return nil
}

func (b *specBuilder) paramPidsLimit(p parameter) error {
	limit, err := strconv.ParseInt(p.value, 10, 64)
	if err != nil || limit < -1 {
		return p.invalid("%q is not a number of processes (0 or -1 for unlimited)", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.PidsLimit = &limit })
	return nil
}

func (b *specBuilder) paramOomScoreAdj(p parameter) error {
	score, err := strconv.Atoi(p.value)
	if err != nil || score < -1000 || score > 1000 {
		return p.invalid("%q is not an OOM score adjustment between -1000 and 1000", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.OomScoreAdj = score })
	return nil
}

func (b *specBuilder) paramOomKillDisable(p parameter) error {
	disable, err := p.boolValue()
	if err != nil {
		return err
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.OOMKillDisable = &disable })
	return nil
}

func (b *specBuilder) paramBlkioWeight(p parameter) error {
	weight, err := strconv.ParseInt(p.value, 10, 64)
	if err != nil || (weight != 0 && (weight < 10 || weight > 1000)) {
		return p.invalid("%q is not a block I/O weight between 10 and 1000 (or 0 for none)", p.value)
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) { h.BlkioWeight = weight })
	return nil
}

func (b *specBuilder) paramStorageOpt(p parameter) error {
	name, value, err := p.keyValue("KEY=VALUE (e.g. size=10G)")
	if err != nil {
		return err
	}
	b.resourceParams.then(p, func(h *docker.HostConfig) {
		if h.StorageOpt == nil {
			h.StorageOpt = map[string]string{}
		}
		h.StorageOpt[name] = value
	})
	return nil
}

// applyResourceParameters applies the resource parameters over what the
// resources and limits set, then checks the result the way the engine
// would, so that a bad combination fails as an invalid task rather than at
// create time.
func (b *specBuilder) applyResourceParameters() error {
	r := b.resourceParams
	if r.set == nil {
		return nil
	}
	h := &b.hostConfig
	// A cpus parameter replaces the CFS quota the resources or limits set:
	// Docker refuses NanoCpus together with CpuQuota or CpuPeriod.
	_, quotaGiven := r.fields["cpu-quota"]
	_, periodGiven := r.fields["cpu-period"]
	if field, ok := r.fields["cpus"]; ok {
		if quotaGiven || periodGiven {
			return taskErrorf("%s: cpus cannot be combined with cpu-quota or cpu-period (Docker refuses both)", field)
		}
		h.CPUQuota, h.CPUPeriod = 0, 0
	}
	noSwap := h.MemorySwap > 0 && h.MemorySwap == h.Memory // FORCE_MEMORY_LIMIT's choice
	r.set(h)
	if _, swapGiven := r.fields["memory-swap"]; noSwap && !swapGiven {
		// A memory parameter replaces the forced limit; keep it swapless.
		h.MemorySwap = h.Memory
	}
	if h.MemorySwap > 0 && h.Memory == 0 {
		return taskErrorf("%s: memory-swap needs a memory limit (the memory parameter, the task's limits, or %s_FORCE_MEMORY_LIMIT)", r.fields["memory-swap"], envPrefix)
	}
	if h.MemorySwap > 0 && h.MemorySwap < h.Memory {
		return taskErrorf("%s: memory-swap %d bytes is below the memory limit %d bytes; it is memory plus swap", r.fields["memory-swap"], h.MemorySwap, h.Memory)
	}
	if h.Memory > 0 && h.MemoryReservation > h.Memory {
		field := r.fields["memory-reservation"]
		if field == "" {
			field = r.fields["memory"]
		}
		return taskErrorf("%s: memory-reservation %d bytes is above the memory limit %d bytes", field, h.MemoryReservation, h.Memory)
	}
	return nil
}

// minContainerMemoryMB is the smallest memory Mesos gives a container.
const minContainerMemoryMB = 32

// applyLimits applies TaskInfo.limits as Mesos' Docker containerizer does:
// cpu-shares from the cpus request, a CFS quota from the cpus limit (100 ms
// period), memory from the mem limit (at least 32 MB), a memory reservation
// from the request, and an OOM score adjustment that makes a task allowed
// above its request the likelier victim. An infinite limit sets no limit.
// Limits, when present, decide the CPU or memory settings whatever
// FORCE_CPU_LIMIT, USE_CPU_SHARES and FORCE_MEMORY_LIMIT say.
func (b *specBuilder) applyLimits(cpuRequest float64, haveCPUs bool, memRequestMB float64, haveMemory bool) error {
	limits := b.task.GetLimits()
	if len(limits) == 0 {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(limits)) {
		value := limits[name].Value
		field := fmt.Sprintf("limits[%q]", name)
		switch {
		case name != "cpus" && name != "mem":
			return taskErrorf("%s: only cpus and mem limits are supported", field)
		case math.IsNaN(value) || value < 0 || math.IsInf(value, -1):
			return taskErrorf("%s is %v; it must be a number not below zero, or Infinity", field, value)
		case name == "cpus" && !haveCPUs:
			return taskErrorf("%s: a cpus limit needs a cpus resource (the request)", field)
		case name == "mem" && !haveMemory:
			return taskErrorf("%s: a mem limit needs a mem resource (the request)", field)
		case name == "cpus" && value < cpuRequest:
			return taskErrorf("%s %v is below the cpus request %v", field, value, cpuRequest)
		case name == "mem" && value < memRequestMB:
			return taskErrorf("%s %v MB is below the mem request %v MB", field, value, memRequestMB)
		case !math.IsInf(value, 1) && name == "cpus" && value > maxTaskCPUs:
			return taskErrorf("%s %v is more than %d", field, value, maxTaskCPUs)
		case !math.IsInf(value, 1) && name == "mem" && value > maxTaskMemoryMB:
			return taskErrorf("%s %v MB is more than %d MB", field, value, int64(maxTaskMemoryMB))
		}
	}
	if limit, ok := limits["cpus"]; ok {
		b.hostConfig.CPUShares = max(int64(math.Round(cpuRequest*1024)), minCPUShares)
		b.hostConfig.CPUPeriod, b.hostConfig.CPUQuota = 0, 0
		if !math.IsInf(limit.Value, 1) {
			b.hostConfig.CPUPeriod = cfsPeriod
			b.hostConfig.CPUQuota = max(int64(math.Round(limit.Value*cfsPeriod)), minCFSQuota)
		}
	}
	if limit, ok := limits["mem"]; ok {
		mb := func(value float64) int64 { return int64(math.Round(max(value, minContainerMemoryMB) * (1 << 20))) }
		b.hostConfig.Memory, b.hostConfig.MemorySwap = 0, 0
		if !math.IsInf(limit.Value, 1) {
			b.hostConfig.Memory = mb(limit.Value)
		}
		b.hostConfig.MemoryReservation = mb(memRequestMB)
		if math.IsInf(limit.Value, 1) || limit.Value > memRequestMB {
			if total := b.in.HostMemoryBytes; total > 0 {
				requestBytes := memRequestMB * (1 << 20)
				score := 1000 - int(math.Round(1000*min(requestBytes/float64(total), 1)))
				b.hostConfig.OomScoreAdj = max(score, 0)
			} else {
				b.warnf("%s: the host's memory size is unknown; no oom-score-adj set for a task allowed above its mem request", "limits[\"mem\"]")
			}
		}
	}
	return nil
}
