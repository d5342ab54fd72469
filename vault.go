package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// vaultScheme marks an environment value that must be replaced by a secret
// read from Vault before the container is created.
const vaultScheme = "vault://"

// defaultVaultField is the secret field used when a reference has no ?key=.
const defaultVaultField = "value"

// parseVaultReference splits "vault://secret/app/db?key=password" into the
// secret path as the Vault CLI writes it ("secret/app/db", mount included,
// without KV v2's "data/") and the field ("password", default "value").
// Path and field may be percent-escaped. The errors never repeat the whole
// reference.
func parseVaultReference(value string) (path string, field string, err error) {
	rest, ok := strings.CutPrefix(value, vaultScheme)
	if !ok {
		return "", "", fmt.Errorf("does not start with %s", vaultScheme)
	}
	if strings.Contains(rest, "#") {
		return "", "", errors.New("a fragment (#) is not allowed")
	}
	rawPath, rawQuery, _ := strings.Cut(rest, "?")
	if path, err = url.PathUnescape(rawPath); err != nil {
		return "", "", errors.New("invalid percent-escape in the path")
	}
	if err := validateVaultPath(path); err != nil {
		return "", "", err
	}

	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", errors.New("invalid query string")
	}
	field = defaultVaultField
	for name, values := range query {
		if name != "key" {
			return "", "", fmt.Errorf("unknown query parameter %q (only key is allowed)", name)
		}
		if len(values) != 1 {
			return "", "", errors.New("key is given more than once")
		}
		if field = values[0]; field == "" {
			return "", "", errors.New("key is empty")
		}
		if hasNonPrintable(field) {
			return "", "", errors.New("key contains non-printable characters")
		}
	}
	return path, field, nil
}

// validateVaultPath rejects paths that do not name exactly one secret:
// empty or absolute paths, empty, "." and ".." segments, directory paths.
func validateVaultPath(path string) error {
	switch {
	case path == "":
		return errors.New("empty path")
	case strings.HasPrefix(path, "/"):
		return errors.New("path must not start with /")
	case strings.HasSuffix(path, "/"):
		return errors.New("path must name a secret, not end with /")
	case hasNonPrintable(path):
		return errors.New("path contains non-printable characters")
	}
	for _, segment := range strings.Split(path, "/") {
		switch segment {
		case "":
			return errors.New("path contains an empty segment (//)")
		case ".", "..":
			return fmt.Errorf("path segment %q is not allowed", segment)
		}
	}
	return nil
}

func hasNonPrintable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0
}
