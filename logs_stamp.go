package main

// logs_stamp.go reads the timestamps of the container's output records.
// Docker's logs API puts one before every record in one fixed layout, UTC
// with nine digits of fraction ("2006-01-02T15:04:05.000000000Z", moby's
// jsonmessage.RFC3339NanoFixed); its json-file log writes RFC 3339 with
// the fraction's trailing zeros cut ("2006-01-02T15:04:05.1234Z" on a
// daemon that runs in UTC). A stream's records share their second with the
// ones before it: only the fraction needs reading. At 10 MB/s of 100-byte
// lines, time.Parse of every stamp was a tenth of what following cost the
// executor.

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
	return r.parseWith(stamp, parseRFC3339Nano)
}

func parseRFC3339Nano(stamp []byte) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, string(stamp))
}

// parseWith reads a stamp as full does. A stamp of the second full read
// last, UTC with one to nine digits of fraction, is read without it: full
// must read such a stamp as RFC 3339 does.
func (r *stampReader) parseWith(stamp []byte, full func([]byte) (time.Time, error)) (time.Time, error) {
	n := len(stamp)
	fixed := n > dockerStampSecond+1 && n <= dockerStampLen && stamp[n-1] == 'Z' && stamp[dockerStampSecond-1] == '.'
	if fixed && r.hasSecond && bytes.Equal(stamp[:dockerStampSecond], r.second[:]) {
		if nanos, ok := fractionDigits(stamp[dockerStampSecond : n-1]); ok {
			return time.Unix(r.unix, nanos).UTC(), nil
		}
	}
	ts, err := full(stamp)
	if err == nil && fixed {
		copy(r.second[:], stamp)
		r.unix, r.hasSecond = ts.Unix(), true
	}
	return ts, err
}

// fractionDigits reads one to nine decimal digits of a second's fraction
// as nanoseconds.
func fractionDigits(digits []byte) (int64, bool) {
	if len(digits) == 0 || len(digits) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	for range 9 - len(digits) {
		n *= 10
	}
	return n, true
}
