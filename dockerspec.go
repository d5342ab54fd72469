package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	shellwords "github.com/mattn/go-shellwords"
)

// containerSandboxPath is where the task sandbox is mounted inside the
// container (Mesos' default --sandbox_directory).
const containerSandboxPath = "/mnt/mesos/sandbox"

const (
	// containerNamePrefix marks containers started for Mesos tasks, as the
	// Docker containerizer does, so that operators recognise them.
	containerNamePrefix = "mesos-"
	// maxContainerNameLength keeps names short enough for every tool that
	// shows them; Docker itself has no documented limit.
	maxContainerNameLength = 128
	// containerNameHashLength is how many hex digits of the task ID's
	// SHA-256 keep altered names unique.
	containerNameHashLength = 12
)

// containerName turns a Mesos task ID into a Docker container name:
// "mesos-" followed by the task ID with every character outside
// [a-zA-Z0-9_-] replaced by '_'. When that replacement changed the ID, or the
// name would exceed 128 characters, a hash of the original task ID is
// appended (after truncation) so that distinct task IDs such as "a.b" and
// "a_b" never share a name. It returns "" for an empty task ID.
//
// '.' is replaced on purpose: Mesos' Docker containerizer parses names of the
// form "mesos-<agentID>.<containerID>" as containers it launched itself, and
// on agent recovery it may stop or kill such a container as an orphan.
func containerName(taskID string) string {
	if taskID == "" {
		return ""
	}
	var sanitized strings.Builder
	changed := false
	for _, r := range taskID {
		if isContainerNameRune(r) {
			sanitized.WriteRune(r)
		} else {
			sanitized.WriteByte('_')
			changed = true
		}
	}
	name := containerNamePrefix + sanitized.String()
	if !changed && len(name) <= maxContainerNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(taskID))
	suffix := "-" + hex.EncodeToString(sum[:])[:containerNameHashLength]
	if len(name)+len(suffix) > maxContainerNameLength {
		// Every byte of the sanitized name is ASCII, so cutting at any byte
		// keeps it valid.
		name = name[:maxContainerNameLength-len(suffix)]
	}
	return name + suffix
}

func isContainerNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// shellOperators are the characters at which go-shellwords stops parsing
// silently; splitShellCommand turns that into an error.
const shellOperators = ";&|<>"

// splitShellCommand splits a command line into words the way a POSIX shell
// would, respecting single quotes, double quotes and backslash escapes, but
// without running anything: no variable expansion, no command substitution
// (backticks and $(...) stay literal text), no globbing. Operators that only
// a shell understands (; & | < >) are an error rather than being dropped with
// the rest of the line.
func splitShellCommand(s string) ([]string, error) {
	parser := shellwords.NewParser()
	parser.ParseEnv = false
	parser.ParseBacktick = false
	parser.ParseComment = false
	words, err := parser.Parse(s)
	if err != nil {
		return nil, errors.New("unbalanced quote, trailing backslash or unquoted parenthesis")
	}
	if parser.Position >= 0 {
		operator := ";"
		runes := []rune(s)
		for i := parser.Position; i >= 0 && i < len(runes); i++ {
			if strings.ContainsRune(shellOperators, runes[i]) {
				operator = string(runes[i])
				break
			}
		}
		return nil, fmt.Errorf("unquoted shell operator %q: the command is not run by a shell; quote the operator, or run the command as /bin/sh -c '...'", operator)
	}
	return words, nil
}

// imageReference is a Docker image reference split into its parts.
type imageReference struct {
	Name   string // [registry[:port]/]path
	Tag    string // "" when absent
	Digest string // "sha256:<hex>", "" when absent
}

// Docker's reference grammar (github.com/distribution/reference), reduced to
// what an image to run may use: lowercase path components separated by '/',
// an optional registry host[:port] first, an optional tag and an optional
// sha256 digest.
const (
	referenceDomainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	referenceDomain          = `(?:` + referenceDomainComponent + `(?:\.` + referenceDomainComponent + `)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?`
	referencePathComponent   = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
	referencePath            = referencePathComponent + `(?:/` + referencePathComponent + `)*`
	referenceTag             = `[\w][\w.-]{0,127}`
	referenceDigest          = `sha256:[a-f0-9]{64}`
	// maxImageNameLength is Docker's limit on the name without tag or digest.
	maxImageNameLength = 255
)

var imageReferencePattern = regexp.MustCompile(`^((?:` + referenceDomain + `/)?` + referencePath + `)(?::(` + referenceTag + `))?(?:@(` + referenceDigest + `))?$`)

// parseImageReference checks image against Docker's reference grammar.
func parseImageReference(image string) (imageReference, error) {
	if image == "" {
		return imageReference{}, errors.New("image is empty")
	}
	match := imageReferencePattern.FindStringSubmatch(image)
	if match == nil {
		return imageReference{}, fmt.Errorf("image %q is not a valid Docker image reference ([registry[:port]/]lowercase/path[:tag][@sha256:<64 hex digits>])", image)
	}
	if len(match[1]) > maxImageNameLength {
		return imageReference{}, fmt.Errorf("image %q is not a valid Docker image reference: the name is longer than %d characters", image, maxImageNameLength)
	}
	return imageReference{Name: match[1], Tag: match[2], Digest: match[3]}, nil
}

// version is what the image says about the version of the service: its tag,
// else its digest, else "latest" (what Docker pulls for an untagged name).
func (r imageReference) version() string {
	switch {
	case r.Tag != "":
		return r.Tag
	case r.Digest != "":
		return r.Digest
	default:
		return "latest"
	}
}
