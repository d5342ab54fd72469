// Package executorshtest makes test copies of executor.sh. The script takes
// the installed binary and its state directory from two fixed lines, never
// from its environment (the task author controls that), so tests rewrite
// those lines in a copy instead.
package executorshtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lines of executor.sh that name its fixed paths.
const (
	installedBinaryLine = "readonly installed_binary=/opt/mesos/sidecar-executor"
	stateDirLine        = "readonly state_dir=/var/lib/sidecar-executor"
)

// Wrapper is a test copy of executor.sh.
type Wrapper struct {
	Path     string // the rewritten script
	StateDir string // where it keeps the shared copies of the binary
}

// New copies the executor.sh at script into a temporary directory with the
// installed binary set to binary and the state directory set to stateDir
// (a fresh temporary directory when empty). It fails the test when either
// line is not found exactly once: a silent miss would test the real paths.
func New(t testing.TB, script, binary, stateDir string) Wrapper {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	w, err := Write(script, binary, stateDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Write is New for programs that are not tests (the scenario bench): it
// writes the copy into dir, which must exist, and returns an error instead
// of failing a test. stateDir must be given.
func Write(script, binary, stateDir, dir string) (Wrapper, error) {
	if stateDir == "" {
		return Wrapper{}, fmt.Errorf("%s: no state directory given", script)
	}
	data, err := os.ReadFile(script)
	if err != nil {
		return Wrapper{}, err
	}
	text := string(data)
	for _, r := range []struct{ line, value string }{
		{installedBinaryLine, "readonly installed_binary=" + shellQuote(binary)},
		{stateDirLine, "readonly state_dir=" + shellQuote(stateDir)},
	} {
		if n := strings.Count(text, "\n"+r.line+"\n"); n != 1 {
			return Wrapper{}, fmt.Errorf("%s: the line %q occurs %d times, want once", script, r.line, n)
		}
		text = strings.Replace(text, "\n"+r.line+"\n", "\n"+r.value+"\n", 1)
	}
	path := filepath.Join(dir, "executor.sh")
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		return Wrapper{}, err
	}
	return Wrapper{Path: path, StateDir: stateDir}, nil
}

// SharedCopies lists the binary copies in the wrapper's state directory.
func (w Wrapper) SharedCopies(t testing.TB) []string {
	t.Helper()
	copies, err := filepath.Glob(filepath.Join(w.StateDir, "bin", "sidecar-executor-*"))
	if err != nil {
		t.Fatal(err)
	}
	return copies
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
