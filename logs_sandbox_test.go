package main

// Unit tests of the sandbox's stdout/stderr writer (logs_sandbox.go): the
// cap, rotation, planted symlinks, pipes and foreign files, the order of
// container lines and executor log lines, and the settings.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// sandboxStdout opens dir/stdout as the agent's default logger does.
func sandboxStdout(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestSandboxFileRotatesAtTheCap(t *testing.T) {
	dir := t.TempDir()
	logger, _ := testLogger()
	const maxSize, keep = 8192, 2
	f := newSandboxFile(sandboxStdout(t, dir), dir, "stdout", OutputSettings{LogMaxSize: maxSize, LogRotateKeep: keep}, logger)
	if f.file == nil {
		t.Fatal("the sandbox's own stdout is not rotated")
	}
	sink := &sandboxSink{stdout: f, stderr: f}
	var lines []string
	for i := 0; i < 1000; i++ {
		line := fmt.Sprintf("%04d %s", i, strings.Repeat("x", 60))
		lines = append(lines, line)
		sink.containerLine(streamStdout, []byte(line))
		if i%100 == 0 {
			// The executor's log goes through the same writer.
			fmt.Fprintf(f, "executor line %d\n", i)
		}
	}
	sink.closeSink()
	var kept string
	for n := keep; n >= 1; n-- {
		path := filepath.Join(dir, fmt.Sprintf("stdout.%d", n))
		content := readFile(t, path)
		if len(content) > maxSize {
			t.Errorf("%s has %d bytes, over the cap of %d", path, len(content), maxSize)
		}
		kept += content
	}
	current := readFile(t, filepath.Join(dir, "stdout"))
	if len(current) > maxSize {
		t.Errorf("stdout has %d bytes, over the cap of %d", len(current), maxSize)
	}
	kept += current
	if _, err := os.Lstat(filepath.Join(dir, fmt.Sprintf("stdout.%d", keep+1))); !os.IsNotExist(err) {
		t.Errorf("stdout.%d exists: more copies than %s=%d", keep+1, settingLogRotateKeep, keep)
	}
	// What is kept is the end of what was written, whole lines in order.
	var containerLines []string
	for _, line := range strings.Split(strings.TrimSuffix(kept, "\n"), "\n") {
		if !strings.HasPrefix(line, "executor line") {
			containerLines = append(containerLines, line)
		}
	}
	tail := lines[len(lines)-len(containerLines):]
	if strings.Join(containerLines, "\n") != strings.Join(tail, "\n") {
		t.Errorf("the files do not hold the last %d lines in order", len(containerLines))
	}
	if len(containerLines) < 200 {
		t.Errorf("only %d lines kept in 3 files of %d bytes", len(containerLines), maxSize)
	}
}

func TestSandboxRotationDoesNotFollowPlantedSymlinks(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	victim := filepath.Join(outside, "host-file")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The container planted links where the rotated copies go.
	for _, name := range []string{"stdout.1", "stdout.2"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "stdout.3")); err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger()
	f := newSandboxFile(sandboxStdout(t, dir), dir, "stdout", OutputSettings{LogMaxSize: 4096, LogRotateKeep: 3}, logger)
	sink := &sandboxSink{stdout: f, stderr: f}
	for i := 0; i < 400; i++ {
		sink.containerLine(streamStdout, []byte(fmt.Sprintf("%04d %s", i, strings.Repeat("y", 40))))
	}
	sink.closeSink()
	if got := readFile(t, victim); got != "precious\n" {
		t.Errorf("the host file behind the planted link was changed: %q", got)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("files were created outside the sandbox: %v", entries)
	}
	for _, name := range []string{"stdout.1", "stdout.2", "stdout.3"} {
		info, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !info.Mode().IsRegular() {
			t.Errorf("%s is not a regular file after rotation: %v %v", name, info, err)
		}
	}
}

func TestSandboxFileIsRotatedOnlyWhenItIsTheSandboxsOwn(t *testing.T) {
	settings := OutputSettings{LogMaxSize: 4096, LogRotateKeep: 1}
	logger, logs := testLogger()

	t.Run("a pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		if f := newSandboxFile(w, t.TempDir(), "stdout", settings, logger); f.file != nil {
			t.Error("a pipe is rotated")
		}
		if !strings.Contains(logs.String(), "it is a pipe") {
			t.Errorf("no reason logged:\n%s", logs.String())
		}
	})
	t.Run("another file", func(t *testing.T) {
		dir := t.TempDir()
		sandboxStdout(t, dir)
		other, err := os.Create(filepath.Join(t.TempDir(), "elsewhere"))
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if f := newSandboxFile(other, dir, "stdout", settings, logger); f.file != nil {
			t.Error("a file that is not the sandbox's stdout is rotated")
		}
		if !strings.Contains(logs.String(), "is not the file the executor writes to") {
			t.Errorf("no reason logged:\n%s", logs.String())
		}
	})
	t.Run("the sandbox name is a symlink to it", func(t *testing.T) {
		dir := t.TempDir()
		real := sandboxStdout(t, t.TempDir())
		if err := os.Symlink(real.Name(), filepath.Join(dir, "stdout")); err != nil {
			t.Fatal(err)
		}
		if f := newSandboxFile(real, dir, "stdout", settings, logger); f.file != nil {
			t.Error("rotated through a symlink")
		}
	})
	t.Run("rotation off", func(t *testing.T) {
		dir := t.TempDir()
		if f := newSandboxFile(sandboxStdout(t, dir), dir, "stdout", OutputSettings{}, logger); f.file != nil {
			t.Error("rotated with a cap of 0")
		}
	})
}

func TestSandboxFileReplacedByTheContainerIsNotCopied(t *testing.T) {
	dir := t.TempDir()
	logger, logs := testLogger()
	out := sandboxStdout(t, dir)
	f := newSandboxFile(out, dir, "stdout", OutputSettings{LogMaxSize: 4096, LogRotateKeep: 1}, logger)
	// The container swaps the name for a link to a host file.
	victim := filepath.Join(t.TempDir(), "host-file")
	os.WriteFile(victim, []byte("host data\n"), 0o644)
	os.Remove(filepath.Join(dir, "stdout"))
	os.Symlink(victim, filepath.Join(dir, "stdout"))
	sink := &sandboxSink{stdout: f, stderr: f}
	for i := 0; i < 200; i++ {
		sink.containerLine(streamStdout, []byte(strings.Repeat("z", 50)))
	}
	sink.closeSink()
	if _, err := os.Lstat(filepath.Join(dir, "stdout.1")); !os.IsNotExist(err) {
		t.Error("a copy was made of a file the sandbox name no longer designates")
	}
	if readFile(t, victim) != "host data\n" {
		t.Error("the host file was changed")
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(out.Fd()), &st); err != nil || st.Size > 4096+51 {
		t.Errorf("the executor's file grew past the cap: %d bytes (%v)", st.Size, err)
	}
	if n := strings.Count(logs.String(), "could not keep a rotated copy"); n != 1 {
		t.Errorf("the failed copy was reported %d times, want once:\n%s", n, logs.String())
	}
}

func TestOutputSettings(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  byteSize
		ok    bool
	}{
		{"10MB", 10 << 20, true}, {"512kb", 512 << 10, true}, {"1 GB", 1 << 30, true},
		{"65536", 65536, true}, {"4096B", 4096, true}, {"0", 0, true},
		{"-1MB", 0, false}, {"ten", 0, false}, {"1.5MB", 0, false}, {"", 0, false},
	} {
		var got byteSize
		err := got.Decode(tc.value)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Decode(%q) = %d, %v; want %d, ok %v", tc.value, got, err, tc.want, tc.ok)
		}
	}
	cfg := mustLoadConfig(t, testSettingsEnv(nil))
	if cfg.LogMaxSize != 10<<20 || cfg.LogRotateKeep != 3 {
		t.Errorf("defaults %d, %d", cfg.LogMaxSize, cfg.LogRotateKeep)
	}
	cfg = mustLoadConfig(t, testSettingsEnv(map[string]string{settingLogMaxSize: "1MB", settingLogRotateKeep: "5"}))
	if cfg.LogMaxSize != 1<<20 || cfg.LogRotateKeep != 5 {
		t.Errorf("operator's values not read: %d, %d", cfg.LogMaxSize, cfg.LogRotateKeep)
	}
	for _, name := range []string{settingLogMaxSize, settingLogRotateKeep} {
		if !isOperatorOnly(name) {
			t.Errorf("%s can be set by a task", name)
		}
	}
	for _, bad := range []map[string]string{{settingLogMaxSize: "100"}, {settingLogRotateKeep: "-1"}, {settingLogMaxSize: "lots"}} {
		if _, err := loadConfigFrom(testSettingsEnv(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// writeSizes records the size of every write it gets.
type writeSizes struct{ sizes []int }

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

// Container lines reach the file in writes of up to sandboxBufferSize
// (a fast writer's fill it); a buffer grown big is let go once a flush
// finds the stream calm.
func TestSandboxFileBatchesContainerLines(t *testing.T) {
	var out writeSizes
	sink := newSandboxSink(&out, &writeSizes{})
	line := []byte(strings.Repeat("x", 99))
	const lines = 4 * sandboxBufferSize / 100
	for range lines {
		sink.containerLine(streamStdout, line)
	}
	if held := bufferCap(sink.stdout); held < sandboxBufferSize-100 {
		t.Fatalf("the buffer holds %d bytes in a busy spell", held)
	}
	sink.stdout.flush()
	total, largest := 0, 0
	for _, n := range out.sizes {
		total += n
		largest = max(largest, n)
	}
	if total != lines*100 {
		t.Fatalf("%d bytes written, want %d", total, lines*100)
	}
	if largest > sandboxBufferSize || largest < sandboxBufferSize-100 {
		t.Fatalf("the largest write is %d bytes; a fast writer's lines should fill writes of up to %d", largest, sandboxBufferSize)
	}
	if held := bufferCap(sink.stdout); held != 0 {
		t.Fatalf("a calm stream still holds a buffer of %d bytes", held)
	}
}

// bufferCap is the capacity of f's buffer (its flush timer may run).
func bufferCap(f *sandboxFile) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return cap(f.buf)
}
