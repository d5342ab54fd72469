package main

// policy_paths.go is the admission policy's view of host paths: which ones
// are protected, and where a bind source really lands once `..` and
// symlinks are followed on the host.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// protectedPath is a host path that no bind may reach: a bind source that
// is it, lies inside it or contains it is refused (the last because a bind
// of /var hands over /var/lib/docker as well).
type protectedPath struct {
	path string
	what string // why it is protected, for the refusal
	// selfOnly protects the path itself but not what lies inside, for "/":
	// everything is inside it, and every path that matters is listed.
	selfOnly bool
}

// protectedHostPaths are the fixed protected paths; the Docker socket named
// by DOCKER_HOST and the Mesos agent's work directory are added per task.
var protectedHostPaths = []protectedPath{
	{path: "/", what: "the host's root filesystem", selfOnly: true},
	{path: "/var/run/docker.sock", what: "the Docker socket, which controls every container on the host"},
	{path: "/run/docker.sock", what: "the Docker socket, which controls every container on the host"},
	{path: "/run/containerd", what: "containerd's socket and state, which control every container on the host"},
	{path: "/var/lib/docker", what: "Docker's storage (every container's filesystem)"},
	{path: "/proc", what: "the host's processes and kernel settings"},
	{path: "/sys", what: "the host's kernel and device settings"},
	{path: "/dev", what: "the host's devices"},
	{path: "/boot", what: "the host's kernel and boot loader"},
	{path: "/root", what: "root's home directory"},
	{path: "/etc/sidecar-executor", what: "the executor's operator settings"},
}

// pathJudge decides on host paths. Every path is compared twice: as
// written (cleaned, the way Docker reads it) and with symlinks resolved on
// the host (the way the kernel mounts it); either form reaching a protected
// path refuses the bind, so neither `..` nor a symlink gets round the rule.
type pathJudge struct {
	protected []protectedPath // each path in both forms
	sandbox   []string        // the task's sandbox, both forms
	allowed   []string        // the operator's exceptions, both forms
}

func newPathJudge(in admissionInput, allowedHostPaths []string) *pathJudge {
	fixed := in.protected
	if fixed == nil {
		fixed = protectedHostPaths
	}
	roots := slices.Clone(fixed)
	if socket, ok := strings.CutPrefix(in.DockerHost, "unix://"); ok && filepath.IsAbs(socket) {
		roots = append(roots, protectedPath{path: socket, what: "the Docker socket (DOCKER_HOST), which controls every container on the host"})
	}
	p := &pathJudge{}
	for _, root := range roots {
		for _, form := range bothForms(root.path) {
			root.path = form
			p.protected = append(p.protected, root)
		}
	}
	// The sandbox is exempt only where it is an ordinary directory: a
	// MESOS_DIRECTORY of / or /var must not open the host to the task.
	if in.HostSandbox != "" && filepath.IsAbs(in.HostSandbox) {
		sandbox := bothForms(in.HostSandbox)
		if !slices.ContainsFunc(sandbox, func(form string) bool { return p.formRefusal(form) != "" }) {
			p.sandbox = sandbox
		}
	}
	// The work directory is added last: the sandbox lies inside it.
	if workDir := agentWorkDir(in.HostSandbox); workDir != "" {
		for _, form := range bothForms(workDir) {
			p.protected = append(p.protected, protectedPath{path: form, what: "the Mesos agent's work directory (other tasks' sandboxes and the agent's state)"})
		}
	}
	for _, allowed := range allowedHostPaths {
		p.allowed = append(p.allowed, bothForms(allowed)...)
	}
	return p
}

// agentWorkDir derives the agent's --work_dir from MESOS_DIRECTORY, which
// Mesos lays out as <work_dir>/slaves/<agent>/frameworks/<framework>/
// executors/<executor>/runs/<container>. It returns "" for any other shape.
func agentWorkDir(sandbox string) string {
	if !filepath.IsAbs(sandbox) {
		return ""
	}
	parts := strings.Split(filepath.Clean(sandbox), "/")
	const tail = 8
	if len(parts) < tail+1 {
		return ""
	}
	layout := parts[len(parts)-tail:]
	for i, want := range []string{"slaves", "frameworks", "executors", "runs"} {
		if layout[2*i] != want || layout[2*i+1] == "" {
			return ""
		}
	}
	workDir := strings.Join(parts[:len(parts)-tail], "/")
	if workDir == "" {
		return "/"
	}
	return workDir
}

// bothForms is a path cleaned and, when different, with its symlinks
// resolved.
func bothForms(p string) []string {
	cleaned := filepath.Clean(p)
	resolved, err := resolveHostPath(p)
	if err != nil || resolved == cleaned {
		return []string{cleaned}
	}
	return []string{cleaned, resolved}
}

// maxSymlinkHops matches Linux's limit (40) with room to spare; a loop is
// reported rather than followed forever.
const maxSymlinkHops = 255

// resolveHostPath resolves symlinks as the kernel would when mounting p,
// walking one element at a time so that `..` after a symlink climbs from
// the link's target. Unlike filepath.EvalSymlinks it copes with paths that
// do not exist yet (Docker creates a missing bind source): from the first
// missing element on, the rest is taken as written. A dangling symlink is
// followed to where it points, since that is where Docker would create the
// directory.
func resolveHostPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	resolved := "/"
	pending := strings.Split(p, "/")
	hops := 0
	for len(pending) > 0 {
		element := pending[0]
		pending = pending[1:]
		switch element {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, element)
		info, err := os.Lstat(next)
		if errors.Is(err, os.ErrNotExist) {
			return filepath.Join(append([]string{next}, pending...)...), nil
		}
		if err != nil {
			return "", err
		}
		if info.Mode()&os.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", fmt.Errorf("%q: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return resolved, nil
}

// within reports whether p is base or lies inside it.
func within(p, base string) bool {
	if base == "/" {
		return true
	}
	return p == base || strings.HasPrefix(p, base+"/")
}

// refusal returns the rule a bind of source breaks and the setting that
// would admit it, or "" when it is admitted.
func (p *pathJudge) refusal(source string) (rule, allow string) {
	cleaned := filepath.Clean(source)
	resolved, err := resolveHostPath(source)
	if err != nil {
		// Docker cannot mount such a path either; an operator who listed it
		// as written has accepted that.
		for _, allowed := range p.allowed {
			if within(cleaned, allowed) {
				return "", ""
			}
		}
		return fmt.Sprintf("cannot be resolved on the host (%v), so the policy cannot tell what it reaches", err), settingAllowedHostPaths + "=" + cleaned
	}
	// The operator's exception is judged on where the bind really lands,
	// so that a symlink placed inside an allowed path cannot widen it.
	for _, allowed := range p.allowed {
		if within(resolved, allowed) {
			return "", ""
		}
	}
	allow = settingAllowedHostPaths + "=" + resolved
	if rule := p.formRefusal(cleaned); rule != "" {
		return "is a host path that " + rule, allow
	}
	if rule := p.formRefusal(resolved); rule != "" {
		return fmt.Sprintf("resolves to %s, which %s", resolved, rule), allow
	}
	return "", ""
}

// formRefusal judges one form of a source path.
func (p *pathJudge) formRefusal(form string) string {
	// The task's own sandbox is mounted into the container anyway: binding
	// it, or part of it, grants nothing new.
	for _, sandbox := range p.sandbox {
		if within(form, sandbox) {
			return ""
		}
	}
	for _, root := range p.protected {
		switch {
		case form == root.path:
			return fmt.Sprintf("is %s (%s)", root.path, root.what)
		case root.selfOnly:
		case within(form, root.path):
			return fmt.Sprintf("is inside %s (%s)", root.path, root.what)
		case within(root.path, form):
			return fmt.Sprintf("contains %s (%s)", root.path, root.what)
		}
	}
	return ""
}
