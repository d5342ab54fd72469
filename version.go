package main

// version.go owns what this build says it is: the version stamped at link
// time (make build and make dist pass -X main.version=$(git describe)),
// else the module version the Go toolchain recorded (go install …@v1.2.3),
// else "dev"; and the commit the toolchain recorded from git.

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"

	log "github.com/sirupsen/logrus"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version string

// buildInfo is what a binary knows of its own build.
type buildInfo struct {
	version   string
	commit    string // the git revision, when the toolchain recorded it
	modified  bool   // the tree had uncommitted changes
	goVersion string
}

// currentBuild describes this binary.
func currentBuild() buildInfo {
	build := buildInfo{version: version, goVersion: goruntime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if build.version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			build.version = info.Main.Version
		}
		for _, setting := range info.Settings {
			switch setting.Key {
			case "vcs.revision":
				build.commit = setting.Value
			case "vcs.modified":
				build.modified = setting.Value == "true"
			}
		}
	}
	if build.version == "" {
		build.version = "dev"
	}
	return build
}

// String is the version subcommand's line: "sidecar-executor v1.2.3
// (commit 0123456789ab, go1.26.8, linux/amd64)".
func (b buildInfo) String() string {
	details := ""
	if b.commit != "" {
		details = "commit " + shortCommit(b.commit)
		if b.modified {
			details += " with uncommitted changes"
		}
		details += ", "
	}
	return fmt.Sprintf("sidecar-executor %s (%s%s, %s/%s)", b.version, details, b.goVersion, goruntime.GOOS, goruntime.GOARCH)
}

// fields are the build's description for a log line.
func (b buildInfo) fields() log.Fields {
	fields := log.Fields{"version": b.version, "go": b.goVersion}
	if b.commit != "" {
		fields["commit"] = shortCommit(b.commit)
		if b.modified {
			fields["commit"] = shortCommit(b.commit) + "+modified"
		}
	}
	return fields
}

func shortCommit(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
