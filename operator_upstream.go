package main

// Upstream's drop-in file, /opt/mesos/executor-environment.sh, read as
// data. Upstream's executor.sh sourced it with bash, so an operator may
// have put VAULT_*, EXECUTOR_* or DOCKER_* settings there. It is a host
// file at a fixed path, the operator's word like /etc/sidecar-executor/
// environment, and its values count as the operator's; the /etc file wins
// where both set a variable. Nothing in it is executed: assignments with
// literal values are read, and every other line (a command, an expansion, a
// substitution) is skipped with a warning naming its line.

import (
	"fmt"
	"os"
	"strings"
)

// upstreamEnvFile is where upstream's executor.sh looked for its
// environment file (SIDECAR_EXECUTOR_CUSTOM_ENV_PATH's default).
const upstreamEnvFile = "/opt/mesos/executor-environment.sh"

// upstreamEnvPathVariable is upstream's variable for another file. The
// executor's environment is the task's, so it is never honoured.
const upstreamEnvPathVariable = "SIDECAR_EXECUTOR_CUSTOM_ENV_PATH"

// upstreamEnvPath is the drop-in file this binary reads; "" for none. Test
// builds that redirect the operator's file (operatorEnvOverrideVar) read
// the drop-in file named by the same variable with _UPSTREAM appended, and
// none when it is unset, so that a test never reads the machine's own.
func upstreamEnvPath() string {
	if operatorEnvOverrideVar != "" && os.Getenv(operatorEnvOverrideVar) != "" {
		return os.Getenv(operatorEnvOverrideVar + "_UPSTREAM")
	}
	return upstreamEnvFile
}

// loadUpstreamEnv reads the drop-in file at path: a missing file (or an
// empty path) means no values. Lines that are not plain assignments come
// back as warnings, which name the file, the line number and the reason,
// never the line: it may hold a secret. A file that cannot be read is an
// error, as for the operator's file.
func loadUpstreamEnv(path string) (values map[string]string, warnings []string, err error) {
	values = map[string]string{}
	if path == "" {
		return values, nil, nil
	}
	file, err := openOperatorFile(path)
	if file == nil || err != nil {
		return values, nil, err
	}
	defer file.Close()
	scanner := operatorFileScanner(file)
	for lineNumber := 1; scanner.Scan(); lineNumber++ {
		name, value, ok, problem := parseUpstreamLine(scanner.Text())
		switch {
		case problem != "":
			warnings = append(warnings, fmt.Sprintf("%s line %d is skipped: %s", path, lineNumber, problem))
		case ok:
			values[name] = value
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, nil, fmt.Errorf("invalid operator settings: cannot read %s: %w", path, err)
	}
	return values, warnings, nil
}

// parseUpstreamLine reads one line of the drop-in file the way bash would
// assign it, for the lines whose meaning needs no execution:
//
//	NAME=value   export NAME=value   NAME='value'   NAME="value"
//
// plus comments and blank lines. Single quotes are literal; double quotes
// take \" \\ \$ \` escapes and nothing may be expanded in them. ok is
// false for a line that assigns nothing; problem says why a line is
// skipped.
func parseUpstreamLine(line string) (name, value string, ok bool, problem string) {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false, ""
	}
	if strings.ContainsRune(line, 0) {
		return "", "", false, "it holds a NUL byte"
	}
	exported := false
	if rest, found := strings.CutPrefix(line, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line, exported = strings.TrimSpace(rest), true
	}
	name, raw, found := strings.Cut(line, "=")
	if !found {
		if exported && validVariableName(line) {
			// "export NAME" only marks a variable for export; every
			// value read here reaches the executor anyway.
			return "", "", false, ""
		}
		return "", "", false, "it is not a NAME=value assignment (a command?); only assignments are read, nothing is run"
	}
	if !validVariableName(name) {
		return "", "", false, "it is not a NAME=value assignment (a command?); only assignments are read, nothing is run"
	}
	value, rest, problem := upstreamValue(raw)
	if problem != "" {
		return "", "", false, fmt.Sprintf("the value of %s %s", name, problem)
	}
	if rest = strings.TrimLeft(rest, " \t"); rest != "" && !strings.HasPrefix(rest, "#") {
		return "", "", false, fmt.Sprintf("the value of %s is followed by more text (a command run with %s set?); quote values that hold spaces", name, name)
	}
	return name, value, true, ""
}

// upstreamValue reads the value at the start of raw and returns it and the
// text after it, or why it cannot be read without running a shell.
func upstreamValue(raw string) (value, rest, problem string) {
	var b strings.Builder
	i := 0
	for i < len(raw) {
		switch c := raw[i]; c {
		case ' ', '\t':
			return b.String(), raw[i:], ""
		case '\'':
			end := strings.IndexByte(raw[i+1:], '\'')
			if end < 0 {
				return "", "", "has no closing single quote (values over several lines are not read)"
			}
			b.WriteString(raw[i+1 : i+1+end])
			i += end + 2
		case '"':
			j := i + 1
			for ; j < len(raw) && raw[j] != '"'; j++ {
				switch raw[j] {
				case '\\':
					if j+1 < len(raw) && strings.IndexByte("\"\\$`", raw[j+1]) >= 0 {
						j++
					}
				case '$':
					return "", "", expansionProblem(raw[j:])
				case '`':
					return "", "", "runs a command (`...`)"
				}
				b.WriteByte(raw[j])
			}
			if j >= len(raw) {
				return "", "", "has no closing double quote (values over several lines are not read)"
			}
			i = j + 1
		case '\\':
			if i+1 >= len(raw) {
				return "", "", "continues on the next line (values over several lines are not read)"
			}
			b.WriteByte(raw[i+1])
			i += 2
		case '$':
			return "", "", expansionProblem(raw[i:])
		case '`':
			return "", "", "runs a command (`...`)"
		case '~':
			if i == 0 {
				return "", "", "starts with ~, which the shell expands to a home directory; write the path out"
			}
			b.WriteByte(c)
			i++
		case ';', '&', '|', '<', '>', '(', ')':
			return "", "", fmt.Sprintf("holds the shell operator %q; quote it if it belongs to the value", c)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), "", ""
}

// expansionProblem describes the expansion at the start of text.
func expansionProblem(text string) string {
	switch {
	case strings.HasPrefix(text, "$(("):
		return "holds an arithmetic expansion ($((...))), which is not evaluated"
	case strings.HasPrefix(text, "$("):
		return "runs a command ($(...))"
	case strings.HasPrefix(text, "${"):
		return "expands a variable (${...}), which is not done here; write the value out"
	}
	return "expands a variable ($...), which is not done here; write the value out (or escape the $ in double quotes)"
}
