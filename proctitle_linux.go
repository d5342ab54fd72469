//go:build linux

package main

import (
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// titleRoom is how many bytes of argv the executor wants for its process
// title ("sidecar-executor <container id> <image>").
const titleRoom = 200

// originalArgs aliases the argv memory the kernel gave the process: Go's
// runtime builds os.Args without copying, so writing through these strings'
// bytes changes what ps and /proc/<pid>/cmdline show. It is captured before
// anything else can replace os.Args.
var originalArgs = os.Args

// ensureTitleRoom re-executes the binary once with a padding argument when
// argv is too short to hold a useful title. Overwriting argv is the only
// portable way to retitle a process: prctl(PR_SET_MM) needs a capability
// that hosts usually deny.
func ensureTitleRoom() {
	if argvSpan(originalArgs) >= titleRoom {
		return
	}
	padding := strings.Repeat(" ", titleRoom)
	args := append(append([]string{}, originalArgs...), padding)
	// On success Exec does not return; on failure the executor simply runs
	// with its original, untitled argv.
	_ = syscall.Exec("/proc/self/exe", args, os.Environ())
}

// argvSpan is the number of bytes argv occupies, or 0 when the strings are
// not laid out back to back (then the title is left alone).
func argvSpan(args []string) int {
	if len(args) == 0 {
		return 0
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(args[0])))
	next := start + uintptr(len(args[0])) + 1
	for _, arg := range args[1:] {
		if uintptr(unsafe.Pointer(unsafe.StringData(arg))) != next {
			return 0
		}
		next += uintptr(len(arg)) + 1
	}
	return int(next - start)
}

// setProcessTitle overwrites argv with title, NUL-padded.
func setProcessTitle(title string) {
	span := argvSpan(originalArgs)
	if span == 0 {
		return
	}
	argv := unsafe.Slice(unsafe.StringData(originalArgs[0]), span)
	n := copy(argv[:span-1], title)
	clear(argv[n:])
}
