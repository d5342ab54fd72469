package main

// No silently ignored setting: every EXECUTOR_* variable of the task's
// environment or the operator's files that no setting reads is reported at
// start-up, with the known setting its name is closest to. A misspelt name
// would otherwise leave a default in place without a word, a policy
// exception or a health threshold included. The known settings are Config's
// fields (settingsOf), so every embedded settings struct counts.

import (
	"fmt"
	"slices"
	"strings"

	log "github.com/sirupsen/logrus"
)

// upstreamSettingNames are upstream sidecar-executor's settings. One that
// is no setting here is reported as such rather than as a misspelling: its
// behaviour is missing, not its name.
var upstreamSettingNames = []string{
	"KILL_TASK_TIMEOUT", "HTTP_TIMEOUT", "SIDECAR_RETRY_COUNT", "SIDECAR_RETRY_DELAY", "SIDECAR_URL",
	"SIDECAR_BACKOFF", "SIDECAR_POLL_INTERVAL", "SIDECAR_MAX_FAILS", "SIDECAR_DRAINING_DURATION", "SEED_SIDECAR",
	"DOCKER_REPOSITORY", "LOGS_SINCE", "FORCE_CPU_LIMIT", "FORCE_MEMORY_LIMIT", "USE_CPU_SHARES", "RELAY_SYSLOG",
	"RELAY_SYSLOG_STARTUP_ONLY", "RELAY_SYSLOG_STARTUP_TIME", "SYSLOG_ADDR", "CONTAINER_LOGS_STDOUT",
	"SEND_DOCKER_LABELS", "LOG_HOSTNAME", "DEBUG", "MESOS_MASTER_PORT", "AWS_ROLE", "AWS_ROLE_TTL", "AWS_ROLE_MAX_TTL",
}

// unknownSetting is an EXECUTOR_* variable that no setting reads.
type unknownSetting struct {
	name string
	// where is "the task's environment" or the operator file's path.
	where string
	// suggestion is the known setting the name is closest to; "" when
	// none is close.
	suggestion string
	// upstream marks an upstream setting this executor does not implement.
	upstream bool
}

func (u unknownSetting) message() string {
	switch {
	case u.upstream:
		return fmt.Sprintf("%s (%s) is a setting of upstream sidecar-executor that this executor does not implement; it has no effect", u.name, u.where)
	case u.suggestion != "" && strings.EqualFold(u.suggestion, u.name):
		return fmt.Sprintf("%s (%s) is not a setting of this executor and has no effect; names are upper case: did you mean %s?", u.name, u.where, u.suggestion)
	case u.suggestion != "":
		return fmt.Sprintf("%s (%s) is not a setting of this executor and has no effect; did you mean %s?", u.name, u.where, u.suggestion)
	}
	return fmt.Sprintf("%s (%s) is not a setting of this executor and has no effect; the README's Settings table lists them all", u.name, u.where)
}

// knownSettingNames are the variables Config reads.
func knownSettingNames() []string {
	var names []string
	for _, setting := range configSettings(&Config{}) {
		names = append(names, setting.name)
	}
	return names
}

// unknownSettings lists the EXECUTOR_* variables (in any letter case) of
// the task's environment and of the operator's files that are not in
// known, sorted by where, then name.
func (e *settingsEnv) unknownSettings(known []string) []unknownSetting {
	var unknown []unknownSetting
	check := func(name, where string) {
		if !strings.HasPrefix(strings.ToUpper(name), envPrefix+"_") || slices.Contains(known, name) {
			return
		}
		u := unknownSetting{name: name, where: where, suggestion: closestSetting(name, known)}
		u.upstream = slices.Contains(upstreamSettingNames, strings.TrimPrefix(name, envPrefix+"_"))
		unknown = append(unknown, u)
	}
	for name := range e.task {
		check(name, "the task's environment")
	}
	for name := range e.operator {
		check(name, e.operatorFileOf(name))
	}
	slices.SortFunc(unknown, func(a, b unknownSetting) int {
		if c := strings.Compare(a.where, b.where); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return unknown
}

// logUnknownSettings warns once per variable that no setting reads.
func (e *settingsEnv) logUnknownSettings(logger *log.Entry) {
	for _, u := range e.unknownSettings(knownSettingNames()) {
		fields := log.Fields{"variable": u.name, "source": u.where}
		if u.suggestion != "" && !u.upstream {
			fields["did_you_mean"] = u.suggestion
		}
		logger.WithFields(fields).Warn(u.message())
	}
}

// closestSetting is the known name at the smallest edit distance from
// name (letter case ignored), or one with the same words in another order;
// "" when none is close enough to be a likely misspelling: at most a third
// of the part after EXECUTOR_ changed, and never more than 4 edits.
func closestSetting(name string, known []string) string {
	upper := strings.ToUpper(name)
	words := sortedWords(upper)
	best, bestDistance := "", -1
	for _, candidate := range known {
		if slices.Equal(sortedWords(candidate), words) {
			return candidate
		}
		if d := editDistance(upper, candidate); bestDistance < 0 || d < bestDistance || (d == bestDistance && candidate < best) {
			best, bestDistance = candidate, d
		}
	}
	limit := min(4, max(1, (len(upper)-len(envPrefix)-1)/3))
	if best == "" || bestDistance > limit {
		return ""
	}
	return best
}

func sortedWords(name string) []string {
	words := strings.Split(name, "_")
	slices.Sort(words)
	return words
}

// editDistance is the Levenshtein distance between a and b, in bytes:
// setting names are ASCII.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	current := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			substitution := previous[j-1]
			if a[i-1] != b[j-1] {
				substitution++
			}
			current[j] = min(previous[j]+1, current[j-1]+1, substitution)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
