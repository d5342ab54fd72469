package main

// policy.go owns admission: whether the container a task asks for may be
// created on this host at all. The task author is trusted only with what the
// operator grants (GUIDE §9), so the decision is taken from the final Docker
// create request that dockerspec.go produced (HostConfig, Config and
// NetworkingConfig: whatever is mapped there is judged, whichever TaskInfo
// field it came from), before any side effect: no Vault lookup, no Docker
// call, no pull. The default follows Kubernetes' Pod Security "baseline"
// profile; only operator settings (EXECUTOR_ALLOW*) loosen it. Host paths
// are judged in policy_paths.go.

import (
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// policyOperatorFile is where the operator's settings live; refusals point
// there because a task cannot loosen the policy through its own environment.
const policyOperatorFile = "/etc/sidecar-executor/environment"

// AdmissionSettings are the operator's exceptions to the admission policy.
// The type is exported only so that envconfig can reach its fields through
// the anonymous embedding in Config (it skips unexported embedded types).
// Lists are kept as the operator wrote them, so that Config stays comparable;
// rules() parses and checks them.
type AdmissionSettings struct {
	// AllowPrivileged admits every container, privileged ones included: it
	// turns the admission policy off.
	AllowPrivileged bool `envconfig:"ALLOW_PRIVILEGED" default:"false"`
	// AllowedCapabilities are capabilities a task may add beyond Docker's
	// default set (comma list; CAP_ prefix and case are ignored; ALL admits
	// every capability, cap-add ALL included).
	AllowedCapabilities string `envconfig:"ALLOWED_CAPABILITIES"`
	// AllowedHostPaths are host paths a task may bind even where the policy
	// protects them: a bind whose resolved source is one of them or inside
	// one is admitted (comma list of absolute paths).
	AllowedHostPaths string `envconfig:"ALLOWED_HOST_PATHS"`
	// AllowedVolumeDrivers are volume drivers other than local a task may
	// use (comma list).
	AllowedVolumeDrivers string `envconfig:"ALLOWED_VOLUME_DRIVERS"`
	// AllowedNamedVolumes are the named volumes a task may mount (comma list
	// of names or path.Match patterns; * admits every name).
	AllowedNamedVolumes string `envconfig:"ALLOWED_NAMED_VOLUMES"`
	// AllowedDevices are host devices a task may be given with the device
	// parameter (comma list of paths such as /dev/fuse).
	AllowedDevices string `envconfig:"ALLOWED_DEVICES"`
	// AllowedHostNamespaces are the host namespaces a task may share (comma
	// list of pid, ipc, uts, userns, cgroupns).
	AllowedHostNamespaces string `envconfig:"ALLOWED_HOST_NAMESPACES"`
	// AllowedSysctls are sysctls a task may set beyond the baseline's safe
	// set (comma list of names, or prefixes ending in *).
	AllowedSysctls string `envconfig:"ALLOWED_SYSCTLS"`
	// AllowedRuntimes are OCI runtimes other than runc a task may name.
	AllowedRuntimes string `envconfig:"ALLOWED_RUNTIMES"`
	// AllowedCgroupParents are the cgroup parents a task may name.
	AllowedCgroupParents string `envconfig:"ALLOWED_CGROUP_PARENTS"`
	// AllowOOMProtection admits a negative oom-score-adj and oom-kill-disable.
	AllowOOMProtection bool `envconfig:"ALLOW_OOM_PROTECTION" default:"false"`
}

// Setting names as the operator writes them.
const (
	settingAllowPrivileged      = envPrefix + "_ALLOW_PRIVILEGED"
	settingAllowedCapabilities  = envPrefix + "_ALLOWED_CAPABILITIES"
	settingAllowedHostPaths     = envPrefix + "_ALLOWED_HOST_PATHS"
	settingAllowedVolumeDrivers = envPrefix + "_ALLOWED_VOLUME_DRIVERS"
	settingAllowedNamedVolumes  = envPrefix + "_ALLOWED_NAMED_VOLUMES"
)

// defaultCapabilities is the set Docker grants every container; adding one
// of them changes nothing, so it needs no permission.
var defaultCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}

// knownCapabilities are the Linux capabilities (capabilities(7)) that an
// operator may name; a typo in the setting must not pass silently.
var knownCapabilities = []string{
	"AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
	"KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
	"SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
	"SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG",
	"WAKE_ALARM",
}

// allCapabilities is Docker's word for every capability.
const allCapabilities = "ALL"

// normalizeCapability accepts the spellings Docker accepts: any case, with
// or without the CAP_ prefix.
func normalizeCapability(name string) string {
	upper := strings.ToUpper(strings.TrimSpace(name))
	return strings.TrimPrefix(upper, "CAP_")
}

// admissionRules are the parsed AdmissionSettings.
type admissionRules struct {
	allowAll      bool
	capabilities  map[string]bool // normalised names, maybe ALL
	hostPaths     []string        // cleaned absolute paths
	volumeDrivers map[string]bool
	namedVolumes  []string // path.Match patterns
	options       optionRules
}

// splitList splits a comma list, dropping blanks so that a trailing comma
// is harmless.
func splitList(list string) []string {
	var items []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// rules parses the settings; every problem names the variable to fix.
func (s AdmissionSettings) rules() (admissionRules, []string) {
	rules := admissionRules{
		allowAll:      s.AllowPrivileged,
		capabilities:  map[string]bool{},
		volumeDrivers: map[string]bool{},
	}
	var problems []string
	for _, item := range splitList(s.AllowedCapabilities) {
		capability := normalizeCapability(item)
		if capability != allCapabilities && !slices.Contains(knownCapabilities, capability) {
			problems = append(problems, fmt.Sprintf("%s: %q is not a Linux capability (known: ALL, %s)", settingAllowedCapabilities, item, strings.Join(knownCapabilities, ", ")))
			continue
		}
		rules.capabilities[capability] = true
	}
	for _, item := range splitList(s.AllowedHostPaths) {
		if !filepath.IsAbs(item) || strings.ContainsRune(item, 0) {
			problems = append(problems, fmt.Sprintf("%s: %q is not an absolute path", settingAllowedHostPaths, item))
			continue
		}
		rules.hostPaths = append(rules.hostPaths, filepath.Clean(item))
	}
	for _, item := range splitList(s.AllowedVolumeDrivers) {
		if strings.ContainsAny(item, " \t\x00") {
			problems = append(problems, fmt.Sprintf("%s: %q is not a volume driver name", settingAllowedVolumeDrivers, item))
			continue
		}
		rules.volumeDrivers[item] = true
	}
	for _, item := range splitList(s.AllowedNamedVolumes) {
		if _, err := path.Match(item, ""); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q is not a valid name pattern: %v", settingAllowedNamedVolumes, item, err))
			continue
		}
		rules.namedVolumes = append(rules.namedVolumes, item)
	}
	rules.options = s.optionRules(&problems)
	return rules, problems
}

// admissionInput is everything an admission decision depends on.
type admissionInput struct {
	// Options is the create request exactly as it would go to Docker.
	Options docker.CreateContainerOptions
	// Task is read only to name the TaskInfo field a refused value came
	// from.
	Task *mesos.TaskInfo
	// HostSandbox is MESOS_DIRECTORY: the task's own sandbox, which it may
	// bind, inside the agent's work directory, which it may not.
	HostSandbox string
	// DockerHost is the executor's DOCKER_HOST; a unix socket there is as
	// protected as the default one.
	DockerHost string
	Settings   AdmissionSettings
	// protected replaces protectedHostPaths, so that tests can protect
	// temporary directories.
	protected []protectedPath
}

// violation is one reason to refuse, written for the operator reading the
// Mesos UI: which field asked for what, the rule it breaks, and the setting
// that would admit it.
type violation struct {
	field string // e.g. `parameter cap-add=SYS_ADMIN`
	rule  string // e.g. `adds a capability outside Docker's default set`
	allow string // e.g. `EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN`
}

func (v violation) String() string {
	return fmt.Sprintf("%s %s; the operator allows it with %s in %s", v.field, v.rule, v.allow, policyOperatorFile)
}

// admissionError lists every violation of one request, so that a task
// author fixes them all at once rather than one launch at a time.
type admissionError struct {
	violations []violation
}

func (e *admissionError) Error() string {
	if len(e.violations) == 1 {
		return "refused by the admission policy: " + e.violations[0].String()
	}
	parts := make([]string, len(e.violations))
	for i, v := range e.violations {
		parts[i] = fmt.Sprintf("(%d) %s", i+1, v)
	}
	return fmt.Sprintf("refused by the admission policy (%d violations): %s", len(e.violations), strings.Join(parts, "; "))
}

// admit decides whether the container may be created. It returns nil, or
// an *admissionError listing every violation, or an error when the
// settings themselves are unusable (loadConfig has already refused those).
func admit(in admissionInput) error {
	rules, problems := in.Settings.rules()
	if len(problems) > 0 {
		return fmt.Errorf("invalid executor settings: %s", strings.Join(problems, "; "))
	}
	if rules.allowAll {
		return nil
	}
	host := in.Options.HostConfig
	if host == nil {
		host = &docker.HostConfig{}
	}
	config := in.Options.Config
	if config == nil {
		config = &docker.Config{}
	}
	j := &judge{in: in, rules: rules, host: host, config: config}
	j.judgePrivileges()
	j.judgeNamespaces()
	j.judgeSecurityOptions()
	j.judgeMounts()
	j.judgeVolumeDrivers()
	j.judgeOptions()
	if len(j.violations) > 0 {
		return &admissionError{violations: j.violations}
	}
	return nil
}

// judge collects the violations of one request.
type judge struct {
	in         admissionInput
	rules      admissionRules
	host       *docker.HostConfig
	config     *docker.Config
	violations []violation
	// paths is built on first use: resolving touches the filesystem.
	paths *pathJudge
}

func (j *judge) refuse(field, rule, allow string) {
	j.violations = append(j.violations, violation{field: field, rule: rule, allow: allow})
}

// refusePrivileged records a violation that only EXECUTOR_ALLOW_PRIVILEGED
// lifts: these fields have no narrower exception.
func (j *judge) refusePrivileged(field, rule string) {
	j.refuse(field, rule, settingAllowPrivileged+"=true")
}

func (j *judge) judgePrivileges() {
	if j.host.Privileged {
		j.refusePrivileged(j.privilegedField(), "asks for a privileged container (every capability and device, no confinement)")
	}
	for _, requested := range j.host.CapAdd {
		j.judgeCapability("parameter cap-add="+requested, requested)
	}
	// Capabilities replaces the whole set; what it holds beyond the
	// default set is as good as added.
	for _, requested := range j.host.Capabilities {
		j.judgeCapability("HostConfig.Capabilities "+requested, requested)
	}
	for _, request := range j.host.DeviceRequests {
		j.refusePrivileged(fmt.Sprintf("parameter gpus (driver %q, %d devices)", request.Driver, request.Count), "gives the container host devices")
	}
	for _, rule := range j.host.DeviceCgroupRules {
		j.refusePrivileged("parameter device-cgroup-rule="+rule, "lets the container use host devices")
	}
}

func (j *judge) judgeCapability(field, requested string) {
	capability := normalizeCapability(requested)
	switch {
	case j.rules.capabilities[allCapabilities] || j.rules.capabilities[capability]:
	case capability == allCapabilities:
		j.refuse(field, "adds every capability", settingAllowedCapabilities+"="+allCapabilities)
	case slices.Contains(defaultCapabilities, capability):
	case slices.Contains(knownCapabilities, capability):
		j.refuse(field, "adds a capability outside Docker's default set", settingAllowedCapabilities+"="+capability)
	default:
		j.refuse(field, "names no capability the policy knows", settingAllowPrivileged+"=true")
	}
}

func (j *judge) judgeNamespaces() {
	namespaces := []struct{ flag, mode, what string }{
		{"pid", j.host.PidMode, "PID"},
		{"ipc", j.host.IpcMode, "IPC"},
		{"uts", j.host.UTSMode, "UTS"},
		{"userns", j.host.UsernsMode, "user"},
		{"cgroupns", j.host.CgroupnsMode, "cgroup"},
		// Host networking is what Mesos HOST networking means: admitted.
		{"network", j.host.NetworkMode, "network"},
	}
	for _, ns := range namespaces {
		field := fmt.Sprintf("parameter %s=%s", ns.flag, ns.mode)
		if ns.flag == "network" {
			field = j.networkField(ns.mode)
		}
		switch {
		case ns.mode == "host" && ns.flag != "network":
			j.judgeHostNamespace(ns.flag, field, ns.what)
		case strings.HasPrefix(ns.mode, "container:"):
			j.refusePrivileged(field, fmt.Sprintf("joins the %s namespace of another container", ns.what))
		}
	}
	if j.in.Options.NetworkingConfig != nil {
		for _, name := range slices.Sorted(maps.Keys(j.in.Options.NetworkingConfig.EndpointsConfig)) {
			if strings.HasPrefix(name, "container:") {
				j.refusePrivileged("container.network_infos name "+name, "joins the network namespace of another container")
			}
		}
	}
	volumesFrom := slices.Clone(j.host.VolumesFrom)
	if j.config.VolumesFrom != "" {
		volumesFrom = append(volumesFrom, j.config.VolumesFrom)
	}
	for _, source := range volumesFrom {
		j.refusePrivileged("parameter volumes-from="+source, "mounts the volumes of another container")
	}
}

// judgeSecurityOptions refuses options that switch confinement off. Docker
// accepts both key=value and the older key:value.
func (j *judge) judgeSecurityOptions() {
	for _, option := range j.host.SecurityOpt {
		field := "parameter security-opt=" + option
		key, value, found := strings.Cut(option, "=")
		if !found {
			key, value, found = strings.Cut(option, ":")
		}
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.TrimSpace(value)
		switch {
		case key == "no-new-privileges":
			// Only an explicit false does anything: it undoes a daemon
			// started with --no-new-privileges.
			if found && strings.EqualFold(value, "false") {
				j.refusePrivileged(field, "lets processes gain privileges through setuid binaries despite the daemon's no-new-privileges")
			}
		case key == "seccomp" && strings.EqualFold(value, "unconfined"):
			j.refusePrivileged(field, "disables seccomp")
		case key == "seccomp" && value != "builtin":
			j.refusePrivileged(field, "replaces Docker's default seccomp profile")
		case key == "apparmor" && strings.EqualFold(value, "unconfined"):
			j.refusePrivileged(field, "disables AppArmor")
		case key == "apparmor":
			// A named profile must have been loaded by the operator.
		case key == "label":
			j.judgeLabelOption(field, value)
		case key == "systempaths" && strings.EqualFold(value, "unconfined"):
			j.refusePrivileged(field, "unmasks the host's /proc and /sys paths")
		default:
			j.refusePrivileged(field, "is a security option the policy does not know")
		}
	}
	if len(j.host.MaskedPaths) > 0 || len(j.host.ReadonlyPaths) > 0 {
		j.refusePrivileged("HostConfig.MaskedPaths/ReadonlyPaths", "replaces Docker's protection of /proc and /sys")
	}
}

// judgeLabelOption follows the baseline profile for SELinux: disabling it,
// or choosing the user, role or type, is refused; an MCS level is admitted.
func (j *judge) judgeLabelOption(field, value string) {
	lower := strings.ToLower(value)
	switch {
	case lower == "disable":
		j.refusePrivileged(field, "disables SELinux labelling")
	case strings.HasPrefix(lower, "level:"):
	default:
		j.refusePrivileged(field, "sets the SELinux user, role or type")
	}
}

// judgeMounts checks every way a container can reach storage: binds,
// mounts, and the legacy Config.Mounts.
func (j *judge) judgeMounts() {
	for _, bind := range j.host.Binds {
		if !strings.Contains(bind, ":") {
			// A bare container path is an anonymous volume: new and empty.
			continue
		}
		source, target, options := splitBind(bind)
		field := j.bindField(bind, source, target)
		if !strings.HasPrefix(source, "/") {
			j.judgeNamedVolume(field, source)
		} else {
			j.judgeHostPath(field, source)
		}
		for _, option := range strings.Split(options, ",") {
			j.judgePropagation(field, option)
		}
	}
	for i, mount := range j.host.Mounts {
		field := fmt.Sprintf("HostConfig.Mounts[%d] (%s %s on %s)", i, mount.Type, mount.Source, mount.Target)
		switch mount.Type {
		case "bind":
			if !filepath.IsAbs(mount.Source) {
				j.refusePrivileged(field, "is a bind whose source is not an absolute host path")
			} else {
				j.judgeHostPath(field, mount.Source)
			}
			if mount.BindOptions != nil {
				j.judgePropagation(field, mount.BindOptions.Propagation)
			}
		case "volume", "":
			if mount.Source != "" {
				j.judgeNamedVolume(field, mount.Source)
			}
		case "tmpfs", "image":
			// Fresh memory or another image's read-only files: no host data.
		default:
			j.refusePrivileged(field, fmt.Sprintf("is a mount of type %q the policy does not know", mount.Type))
		}
	}
	for i, mount := range j.config.Mounts {
		field := fmt.Sprintf("Config.Mounts[%d] (%s on %s)", i, mount.Source, mount.Destination)
		switch {
		case strings.HasPrefix(mount.Source, "/"):
			j.judgeHostPath(field, mount.Source)
		case mount.Name != "":
			j.judgeNamedVolume(field, mount.Name)
		case mount.Source != "":
			j.judgeNamedVolume(field, mount.Source)
		}
	}
}

// splitBind splits "source:target[:options]".
func splitBind(bind string) (source, target, options string) {
	source, rest, _ := strings.Cut(bind, ":")
	target, options, _ = strings.Cut(rest, ":")
	return source, target, options
}

// judgePropagation refuses shared propagation: mounts made inside the
// container would then appear on the host (Kubernetes reserves
// Bidirectional propagation for privileged pods).
func (j *judge) judgePropagation(field, option string) {
	switch option {
	case "shared", "rshared":
		j.refusePrivileged(field, fmt.Sprintf("uses %s mount propagation, which carries mounts made in the container back to the host", option))
	}
}

func (j *judge) judgeNamedVolume(field, name string) {
	for _, pattern := range j.rules.namedVolumes {
		if matched, _ := path.Match(pattern, name); matched {
			return
		}
	}
	j.refuse(field, fmt.Sprintf("mounts the named volume %q, which may hold another team's data", name), settingAllowedNamedVolumes+"="+name)
}

func (j *judge) judgeHostPath(field, source string) {
	if j.paths == nil {
		j.paths = newPathJudge(j.in, j.rules.hostPaths)
	}
	if rule, allow := j.paths.refusal(source); rule != "" {
		j.refuse(field, rule, allow)
	}
}

// bindField names the TaskInfo field a bind came from, found by its
// container path (dockerspec refuses two volumes on one path).
func (j *judge) bindField(bind, source, target string) string {
	if target == containerSandboxPath && source == j.in.HostSandbox {
		return "the task sandbox MESOS_DIRECTORY=" + source
	}
	if j.in.Task != nil && j.in.Task.Container != nil {
		for i, volume := range j.in.Task.Container.Volumes {
			volumeTarget := path.Clean(volume.ContainerPath)
			if !path.IsAbs(volume.ContainerPath) {
				volumeTarget = path.Join(containerSandboxPath, volume.ContainerPath)
			}
			if volumeTarget != target {
				continue
			}
			if volume.HostPath != nil {
				return fmt.Sprintf("container.volumes[%d].host_path=%s", i, volume.GetHostPath())
			}
			return fmt.Sprintf("container.volumes[%d].source.docker_volume.name=%s", i, volume.GetSource().GetDockerVolume().GetName())
		}
	}
	return "bind " + bind
}

// judgeVolumeDrivers admits the local driver and the operator's list:
// another driver may reach storage far beyond this host.
func (j *judge) judgeVolumeDrivers() {
	type use struct{ field, driver string }
	var uses []use
	if driver := j.host.VolumeDriver; driver != "" {
		uses = append(uses, use{j.volumeDriverField(driver), driver})
	}
	if driver := j.config.VolumeDriver; driver != "" && driver != j.host.VolumeDriver {
		uses = append(uses, use{"Config.VolumeDriver=" + driver, driver})
	}
	for i, mount := range j.host.Mounts {
		if mount.VolumeOptions != nil && mount.VolumeOptions.DriverConfig.Name != "" {
			driver := mount.VolumeOptions.DriverConfig.Name
			uses = append(uses, use{fmt.Sprintf("HostConfig.Mounts[%d] volume driver %s", i, driver), driver})
		}
	}
	for i, mount := range j.config.Mounts {
		if mount.Driver != "" {
			uses = append(uses, use{fmt.Sprintf("Config.Mounts[%d] volume driver %s", i, mount.Driver), mount.Driver})
		}
	}
	for _, u := range uses {
		if u.driver == "local" || j.rules.volumeDrivers[u.driver] {
			continue
		}
		j.refuse(u.field, fmt.Sprintf("uses the volume driver %q; only local volumes are admitted", u.driver), settingAllowedVolumeDrivers+"="+u.driver)
	}
}

// volumeDriverField names the TaskInfo field that chose the driver.
func (j *judge) volumeDriverField(driver string) string {
	task := j.in.Task
	if task != nil && task.Container != nil && task.Container.Docker != nil {
		dockerInfo := task.Container.Docker
		for _, parameter := range dockerInfo.Parameters {
			if strings.TrimLeft(parameter.Key, "-") == "volume-driver" && parameter.Value == driver {
				return "parameter volume-driver=" + driver
			}
		}
		if dockerInfo.GetVolumeDriver() == driver {
			return "container.docker.volume_driver=" + driver
		}
		for i, volume := range task.Container.Volumes {
			if volume.GetSource().GetDockerVolume().GetDriver() == driver {
				return fmt.Sprintf("container.volumes[%d].source.docker_volume.driver=%s", i, driver)
			}
		}
	}
	return "HostConfig.VolumeDriver=" + driver
}

// privilegedField names where privileged mode was asked for: a privileged
// parameter, else DockerInfo.privileged.
func (j *judge) privilegedField() string {
	if task := j.in.Task; task != nil && task.Container != nil && task.Container.Docker != nil {
		for _, parameter := range task.Container.Docker.Parameters {
			if strings.TrimLeft(parameter.Key, "-") == "privileged" {
				return "parameter privileged=" + parameter.Value
			}
		}
	}
	return "container.docker.privileged=true"
}

// networkField names where the network mode came from: a network (or net)
// parameter replaces container.docker.network.
func (j *judge) networkField(mode string) string {
	if task := j.in.Task; task != nil && task.Container != nil && task.Container.Docker != nil {
		for _, parameter := range task.Container.Docker.Parameters {
			if key := strings.TrimLeft(parameter.Key, "-"); (key == "network" || key == "net") && parameter.Value == mode {
				return "parameter " + key + "=" + mode
			}
		}
	}
	return "container.docker.network " + mode
}
