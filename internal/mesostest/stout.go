package mesostest

import (
	"math"
	"strconv"
	"time"
)

// stoutUnits are stout's duration units, smallest first.
var stoutUnits = []struct {
	size time.Duration
	name string
}{
	{time.Nanosecond, "ns"},
	{time.Microsecond, "us"},
	{time.Millisecond, "ms"},
	{time.Second, "secs"},
	{time.Minute, "mins"},
	{time.Hour, "hrs"},
	{24 * time.Hour, "days"},
	{7 * 24 * time.Hour, "weeks"},
}

// StoutDuration renders d the way the agent prints durations into an
// executor's environment (stout's Duration operator<<): the unit is the
// largest one not exceeding d, except that when d is not a whole number of
// that unit but is a whole number of the next smaller one, the smaller unit
// is used ("90secs", not "1.5mins"). Otherwise the value is printed with up to
// 15 significant digits.
func StoutDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
		if d == math.MinInt64 {
			d = math.MaxInt64
		} else {
			d = -d
		}
	}
	i := 0
	for i+1 < len(stoutUnits) && d >= stoutUnits[i+1].size {
		i++
	}
	if i > 0 && d%stoutUnits[i].size != 0 && d%stoutUnits[i-1].size == 0 {
		i--
	}
	unit := stoutUnits[i]
	if d%unit.size == 0 {
		return sign + strconv.FormatInt(int64(d/unit.size), 10) + unit.name
	}
	return sign + strconv.FormatFloat(float64(d)/float64(unit.size), 'g', 15, 64) + unit.name
}
