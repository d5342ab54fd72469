package main

// logs_sink.go defines how the container's output reaches its consumers:
// the stream of its stdout and stderr (logs*.go) hands each complete line
// to every sink, in order per stream. The sandbox files and the syslog
// relay are sinks.

// logStream says which of the container's streams a line came from.
type logStream int

const (
	streamStdout logStream = 1
	streamStderr logStream = 2
)

func (s logStream) String() string {
	if s == streamStderr {
		return "stderr"
	}
	return "stdout"
}

// containerLineSink receives the container's output line by line.
type containerLineSink interface {
	// containerLine is one line without its trailing newline (a final
	// line without one is delivered too). It must not block for long and
	// must not keep line after it returns.
	containerLine(stream logStream, line []byte)
	// closeSink is called once, after the last line, when the stream ends.
	closeSink()
}
