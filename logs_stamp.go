package main

// logs_stamp.go reads the timestamp Docker puts before every record of a
// followed output. Docker writes them in one fixed layout, UTC with nine
// digits of fraction ("2006-01-02T15:04:05.000000000Z", moby's
// jsonmessage.RFC3339NanoFixed), and a stream's records share their
// second with the ones before it: only the fraction needs reading. At
// 10 MB/s of 100-byte lines, time.Parse of every stamp was a tenth of
// what following cost the executor.

import (
	"bytes"
	"time"
)

const (
	// dockerStampLen is the length of Docker's fixed-layout UTC stamp;
	// dockerStampSecond the length of its part up to the fraction
	// ("2006-01-02T15:04:05.").
	dockerStampLen    = len("2006-01-02T15:04:05.000000000Z")
	dockerStampSecond = len("2006-01-02T15:04:05.")
)

// stampReader parses one stream's record stamps; it remembers the second
// of the last stamp it parsed in full.
type stampReader struct {
	second    [dockerStampSecond]byte
	unix      int64
	hasSecond bool
}

// parse reads a stamp as time.Parse(time.RFC3339Nano) does: the same time
// for every stamp it accepts, an error for every one it refuses.
func (r *stampReader) parse(stamp []byte) (time.Time, error) {
	fixed := len(stamp) == dockerStampLen && stamp[dockerStampLen-1] == 'Z' && stamp[dockerStampSecond-1] == '.'
	if fixed && r.hasSecond && bytes.Equal(stamp[:dockerStampSecond], r.second[:]) {
		if nanos, ok := nineDigits(stamp[dockerStampSecond : dockerStampLen-1]); ok {
			return time.Unix(r.unix, nanos).UTC(), nil
		}
	}
	ts, err := time.Parse(time.RFC3339Nano, string(stamp))
	if err == nil && fixed {
		copy(r.second[:], stamp)
		r.unix, r.hasSecond = ts.Unix(), true
	}
	return ts, err
}

// nineDigits reads nine decimal digits.
func nineDigits(digits []byte) (int64, bool) {
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, len(digits) == 9
}
