package main

// The release tarball, as an operator gets it: make dist in a clean clone
// of the repository, unpacked, its binary asked for its version, and a task
// run through mesos-local with the unpacked executor.sh and binary.

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/executorshtest"
)

// runIn runs a command in dir and returns its trimmed standard output.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	// An outer make's variables (make test runs this test) and a VERSION
	// of the caller's would change what the inner make builds.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains([]string{"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VERSION", "GOOS", "GOARCH"}, name) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// unpack extracts the tarball into dir and returns its entries' names and
// modes.
func unpack(t *testing.T, tarball, dir string) map[string]os.FileMode {
	t.Helper()
	file, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	gz, err := gzip.NewReader(file)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]os.FileMode{}
	archive := tar.NewReader(gz)
	for {
		header, err := archive.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		if header.Uid != 0 || header.Gid != 0 {
			t.Errorf("%s is owned by %d:%d in the tarball, want 0:0", header.Name, header.Uid, header.Gid)
		}
		entries[header.Name] = header.FileInfo().Mode()
		target := filepath.Join(dir, filepath.FromSlash(header.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			t.Fatalf("tarball entry %q leaves its directory", header.Name)
		}
		switch header.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, header.FileInfo().Mode().Perm())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, archive); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("tarball entry %q is of type %c, want only directories and files", header.Name, header.Typeflag)
		}
	}
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, errA := os.ReadFile(got)
	b, errB := os.ReadFile(want)
	if errA != nil || errB != nil || string(a) != string(b) {
		t.Errorf("%s differs from %s (%v, %v)", got, want, errA, errB)
	}
}

func TestReleaseTarball(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	clone := filepath.Join(work, "clone")
	runIn(t, work, nil, "git", "clone", "--quiet", root, clone)
	wantVersion := runIn(t, clone, nil, "git", "describe", "--tags", "--always", "--dirty")
	commit := runIn(t, clone, nil, "git", "rev-parse", "HEAD")

	runIn(t, clone, []string{"GOARCH=" + runtime.GOARCH}, "make", "--no-print-directory", "dist")
	name := "sidecar-executor-" + wantVersion + "-linux-" + runtime.GOARCH
	tarball := filepath.Join(clone, "dist", name+".tar.gz")

	sum, err := os.ReadFile(tarball + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(data)
	if want := hex.EncodeToString(digest[:]) + "  " + name + ".tar.gz\n"; string(sum) != want {
		t.Errorf("%s.sha256 holds %q, want %q", name, sum, want)
	}

	unpacked := filepath.Join(work, "unpacked")
	if err := os.Mkdir(unpacked, 0o755); err != nil {
		t.Fatal(err)
	}
	entries := unpack(t, tarball, unpacked)
	wantEntries := map[string]os.FileMode{
		name + "/":                   os.ModeDir | 0o755,
		name + "/sidecar-executor":   0o755,
		name + "/executor.sh":        0o755,
		name + "/environment.sample": 0o644,
		name + "/README.md":          0o644,
		name + "/SECURITY.md":        0o644,
	}
	for entry, mode := range wantEntries {
		if got, ok := entries[entry]; !ok || got != mode {
			t.Errorf("tarball entry %s: mode %v (present %v), want %v", entry, got, ok, mode)
		}
	}
	for entry := range entries {
		if _, ok := wantEntries[entry]; !ok {
			t.Errorf("unexpected tarball entry %s", entry)
		}
	}
	dir := filepath.Join(unpacked, name)
	sameFile(t, filepath.Join(dir, "executor.sh"), filepath.Join(clone, "executor.sh"))
	sameFile(t, filepath.Join(dir, "environment.sample"), filepath.Join(clone, "packaging", "environment.sample"))

	binary := filepath.Join(dir, "sidecar-executor")
	versionLine := runIn(t, dir, nil, binary, "version")
	if want := "sidecar-executor " + wantVersion + " (commit " + commit[:12] + ", "; !strings.HasPrefix(versionLine, want) {
		t.Errorf("version says %q, want it to start with %q", versionLine, want)
	}

	// The unpacked executor.sh and binary run a task, with only the
	// script's two fixed paths pointed at the unpacked files.
	wrapper := executorshtest.New(t, filepath.Join(dir, "executor.sh"), binary, "")
	r := startLocal(t, []string{"-executor", wrapper.Path, "examples/batch-job.json"})
	if code := r.wait(t, 90*time.Second); code != exitFinished {
		t.Errorf("exit code %d, want %d", code, exitFinished)
	}
	assertLinesInOrder(t, r.output.String(), `TASK_FINISHED +message="container exited with status 0"$`)
	logLines := strings.Split(r.sandboxFile(t, "stdout"), "\n")
	first := slices.IndexFunc(logLines, func(line string) bool { return strings.Contains(line, "level=") })
	if first < 0 || !strings.Contains(logLines[first], `msg="sidecar-executor starting"`) || !strings.Contains(logLines[first], "version="+wantVersion) {
		t.Errorf("the executor's first log line does not give its version %s:\n%s", wantVersion, strings.Join(logLines[:min(len(logLines), 3)], "\n"))
	}
	assertNoContainerLeft(t, r)
}
