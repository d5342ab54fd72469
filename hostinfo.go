package main

// hostinfo.go owns what the task mapping needs to know about the agent
// host itself: its total memory (for the OOM score adjustment of tasks with
// a mem limit above their request, as Mesos' Docker containerizer computes
// it). Read once from /proc/meminfo.

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

var hostMemoryOnce = sync.OnceValue(func() int64 {
	file, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer file.Close()
	return parseMemTotal(file)
})

// hostMemoryBytes is the host's total memory, 0 when unknown.
func hostMemoryBytes() int64 { return hostMemoryOnce() }

// parseMemTotal reads the MemTotal line ("MemTotal:  16318412 kB").
func parseMemTotal(meminfo io.Reader) int64 {
	scanner := bufio.NewScanner(meminfo)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 3 && fields[0] == "MemTotal:" && fields[2] == "kB" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || kb <= 0 || kb > 1<<40 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
