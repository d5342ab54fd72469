package main

import (
	goruntime "runtime"
	"testing"
)

func TestBuildInfoString(t *testing.T) {
	platform := goruntime.GOOS + "/" + goruntime.GOARCH
	cases := []struct {
		build buildInfo
		want  string
	}{
		{buildInfo{version: "v1.2.3", commit: "0123456789abcdef0123", goVersion: "go1.26.8"},
			"sidecar-executor v1.2.3 (commit 0123456789ab, go1.26.8, " + platform + ")"},
		{buildInfo{version: "v1.2.3-4-gabc-dirty", commit: "0123456789abcdef0123", modified: true, goVersion: "go1.26.8"},
			"sidecar-executor v1.2.3-4-gabc-dirty (commit 0123456789ab with uncommitted changes, go1.26.8, " + platform + ")"},
		{buildInfo{version: "dev", goVersion: "go1.26.8"}, "sidecar-executor dev (go1.26.8, " + platform + ")"},
	}
	for _, tc := range cases {
		if got := tc.build.String(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// A build that no one stamped says "dev" (test binaries are such builds),
// and a stamped one says its stamp.
func TestCurrentBuildVersion(t *testing.T) {
	saved := version
	t.Cleanup(func() { version = saved })
	version = ""
	if got := currentBuild().version; got != "dev" {
		t.Errorf("unstamped build says %q, want dev", got)
	}
	version = "v9.8.7"
	build := currentBuild()
	if build.version != "v9.8.7" || build.fields()["version"] != "v9.8.7" {
		t.Errorf("stamped build says %q (log field %v), want v9.8.7", build.version, build.fields()["version"])
	}
}
