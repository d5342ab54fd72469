package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dirWatch wakes the follow of a json-file log when something changes in
// its directory: a write to the log, Docker's rename of it at a rotation,
// the new file. Its events carry no data: the reader looks for itself.
// The inotify queue is read only while the reader waits (next): while it
// reads, the kernel merges the log's writes into one queued event and
// wakes no one.
type dirWatch struct {
	f *os.File
	// arm asks the goroutine for one wake-up, sent on events.
	arm    chan struct{}
	events chan struct{}
	armed  bool
}

// dirWatchEvents are the changes that can mean new output.
const dirWatchEvents = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

func newDirWatch(dir string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		// EMFILE: the host's fs.inotify.max_user_instances is reached.
		return nil, fmt.Errorf("inotify (see fs.inotify.max_user_instances): %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, dirWatchEvents); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s with inotify: %w", dir, err)
	}
	// A non-blocking descriptor is read through the runtime's poller:
	// the goroutine below costs nothing while nothing changes.
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), arm: make(chan struct{}), events: make(chan struct{}, 1)}
	go w.run()
	return w, nil
}

func (w *dirWatch) run() {
	// Room for one event with the longest name, and some more.
	buf := make([]byte, 1024)
	for range w.arm {
		if _, err := w.f.Read(buf); err != nil {
			return
		}
		w.events <- struct{}{}
	}
}

// next returns the channel that receives once the directory changed since
// the last receive (queued changes count). The receiver calls woke.
func (w *dirWatch) next() <-chan struct{} {
	if !w.armed {
		w.armed = true
		w.arm <- struct{}{}
	}
	return w.events
}

func (w *dirWatch) woke() { w.armed = false }

// close ends the watch and its goroutine.
func (w *dirWatch) close() {
	w.f.Close()
	close(w.arm)
}
