package main

// Readings of a process from /proc.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// statusKB reads a "Name:   1234 kB" field of /proc/<pid>/status, in KiB.
func statusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return kbField(data, field)
}

// kbField finds "field:   N kB" in a /proc key-value file.
func kbField(data []byte, field string) (int64, error) {
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		name, rest, ok := strings.Cut(scanner.Text(), ":")
		if !ok || name != field {
			continue
		}
		value := strings.TrimSuffix(strings.TrimSpace(rest), " kB")
		return strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	}
	return 0, fmt.Errorf("no %s field", field)
}

// rssKB is VmRSS of the process, in KiB.
func rssKB(pid int) (int64, error) { return statusKB(pid, "VmRSS") }

// smapsRollup reads the KiB fields of /proc/<pid>/smaps_rollup that tell
// what the resident memory is: Rss, Anonymous, and file-backed pages
// (Rss minus Anonymous: the binary's text and data as mapped).
func smapsRollup(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, field := range []string{"Rss", "Pss", "Anonymous", "Private_Dirty", "Shared_Clean"} {
		v, err := kbField(data, field)
		if err != nil {
			return nil, err
		}
		out[field] = v
	}
	// The PSS split into anonymous and file-backed pages came with Linux
	// 5.13; older kernels report neither, and the report shows them as 0.
	for _, field := range []string{"Pss_Anon", "Pss_File"} {
		if v, err := kbField(data, field); err == nil {
			out[field] = v
		}
	}
	return out, nil
}

// cpuTicks is utime+stime of the whole process (every thread, exited ones
// included) from /proc/<pid>/stat, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(data)
}

// parseStatTicks extracts utime (field 14) and stime (field 15) of a
// /proc/<pid>/stat line. The command name (field 2) is parenthesised and may
// hold spaces, so fields are counted from the last ')'.
func parseStatTicks(data []byte) (int64, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed stat line %q", data)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state): utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("stat line has %d fields after the command", len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// cpuReading reads both of a process's CPU counters: cpuTicks and
// schedRuntimeNs.
func cpuReading(pid int) (ticks, schedNs int64, err error) {
	if ticks, err = cpuTicks(pid); err != nil {
		return 0, 0, err
	}
	if schedNs, err = schedRuntimeNs(pid); err != nil {
		return 0, 0, err
	}
	return ticks, schedNs, nil
}

// schedRuntimeNs sums the nanoseconds on CPU (first field of schedstat) of
// the process's live threads: a finer cross-check of cpuTicks that misses
// threads that exited.
func schedRuntimeNs(pid int) (int64, error) {
	paths, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(paths) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d: %v", pid, err)
	}
	var total int64
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // the thread went away
		}
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// threadCount is the number of threads of the process.
func threadCount(pid int) (int, error) {
	v, err := statusKB(pid, "Threads") // no " kB" suffix; the parser tolerates that
	return int(v), err
}

// clockTicks is USER_HZ, the unit of utime and stime.
func clockTicks() (int64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK printed %q", out)
	}
	return v, nil
}

// memTotalKB is the machine's MemTotal.
func memTotalKB() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return kbField(data, "MemTotal")
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}
