// Command logwriter is the container side of the bench's log-streaming
// scenario (bench/logs.go): it writes numbered lines of a fixed length to
// its stdout at a steady rate, then an end marker. Built static by the
// bench and run from the task's sandbox inside the test image, which has
// no way to pace a shell loop finer than a second.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	rate := flag.Int("rate", 10_000_000, "bytes per second")
	lineLen := flag.Int("line", 100, "bytes per line, newline included (at least 16)")
	seconds := flag.Int("seconds", 20, "how long to write")
	flag.Parse()
	if *lineLen < 16 || *rate < *lineLen || *seconds < 1 {
		fmt.Fprintln(os.Stderr, "logwriter: -line ≥ 16, -rate ≥ -line, -seconds ≥ 1")
		os.Exit(2)
	}
	// Lines "NNNN 000…0\n", numbered 0000–9999 over and over, as the
	// scenario's first-line detection expects.
	padding := bytes.Repeat([]byte{'0'}, *lineLen-6)
	line := func(buf []byte, i int) []byte {
		buf = fmt.Appendf(buf, "%04d ", i%10000)
		buf = append(buf, padding...)
		return append(buf, '\n')
	}
	// Every millisecond, the lines due by then, in one write.
	const tick = time.Millisecond
	total := int64(*rate) * int64(*seconds) / int64(*lineLen)
	start := time.Now()
	var written int64
	var buf []byte
	for written < total {
		due := min(total, int64(time.Since(start).Seconds()*float64(*rate))/int64(*lineLen))
		buf = buf[:0]
		for ; written < due; written++ {
			buf = line(buf, int(written))
		}
		if len(buf) > 0 {
			if _, err := os.Stdout.Write(buf); err != nil {
				fmt.Fprintln(os.Stderr, "logwriter:", err)
				os.Exit(1)
			}
		}
		time.Sleep(tick)
	}
	fmt.Println("bench-log-end")
}
