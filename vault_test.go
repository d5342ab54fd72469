package main

import (
	"net/url"
	"strings"
	"testing"
)

var vaultReferenceCases = []struct {
	name      string
	value     string
	wantPath  string
	wantField string
	wantErr   string
}{
	{name: "default field", value: "vault://secret/app/db", wantPath: "secret/app/db", wantField: "value"},
	{name: "key", value: "vault://secret/app/db?key=password", wantPath: "secret/app/db", wantField: "password"},
	{name: "mount only one level", value: "vault://kv1/token", wantPath: "kv1/token", wantField: "value"},
	{name: "escaped path and key", value: "vault://secret/my%20app/db?key=pass%2Fword", wantPath: "secret/my app/db", wantField: "pass/word"},
	{name: "plus in key is a space", value: "vault://secret/a?key=b+c", wantPath: "secret/a", wantField: "b c"},
	{name: "empty query", value: "vault://secret/a?", wantPath: "secret/a", wantField: "value"},
	{name: "dots inside a segment", value: "vault://secret/app.v2/..db", wantPath: "secret/app.v2/..db", wantField: "value"},

	{name: "not vault", value: "https://secret/app", wantErr: "does not start with vault://"},
	{name: "upper-case scheme", value: "VAULT://secret/app", wantErr: "does not start with vault://"},
	{name: "empty path", value: "vault://", wantErr: "empty path"},
	{name: "empty path with key", value: "vault://?key=x", wantErr: "empty path"},
	{name: "absolute path", value: "vault:///x", wantErr: "must not start with /"},
	{name: "directory", value: "vault://secret/app/", wantErr: "not end with /"},
	{name: "double slash", value: "vault://secret//app", wantErr: "empty segment"},
	{name: "dot dot", value: "vault://secret/../sys/x", wantErr: `segment ".."`},
	{name: "trailing dot dot", value: "vault://secret/app/..", wantErr: "not allowed"},
	{name: "escaped dot dot", value: "vault://secret/%2E%2E/x", wantErr: `segment ".."`},
	{name: "dot", value: "vault://secret/./x", wantErr: `segment "."`},
	{name: "bad escape in path", value: "vault://secret/%zz", wantErr: "invalid percent-escape"},
	{name: "bad escape in query", value: "vault://secret/a?key=%zz", wantErr: "invalid query"},
	{name: "semicolon in query", value: "vault://secret/a?key=x;y", wantErr: "invalid query"},
	{name: "unknown parameter", value: "vault://secret/a?field=x", wantErr: `unknown query parameter "field"`},
	{name: "unknown next to key", value: "vault://secret/a?key=x&version=2", wantErr: `unknown query parameter "version"`},
	{name: "key twice", value: "vault://secret/a?key=x&key=y", wantErr: "more than once"},
	{name: "empty key", value: "vault://secret/a?key=", wantErr: "key is empty"},
	{name: "fragment", value: "vault://secret/a#b", wantErr: "fragment"},
	{name: "control character", value: "vault://secret/a%0Ab", wantErr: "non-printable"},
	{name: "control character in key", value: "vault://secret/a?key=a%00", wantErr: "non-printable"},
}

func TestParseVaultReference(t *testing.T) {
	for _, tc := range vaultReferenceCases {
		t.Run(tc.name, func(t *testing.T) {
			path, field, err := parseVaultReference(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseVaultReference(%q) error = %v, want one containing %q", tc.value, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseVaultReference(%q): %v", tc.value, err)
			}
			if path != tc.wantPath || field != tc.wantField {
				t.Errorf("parseVaultReference(%q) = (%q, %q), want (%q, %q)", tc.value, path, field, tc.wantPath, tc.wantField)
			}
		})
	}
}

// FuzzParseVaultReference checks the parser's invariants: an accepted
// reference names a relative path of non-empty, non-dot segments and a
// non-empty field, and writing them back in escaped form parses to the same.
func FuzzParseVaultReference(f *testing.F) {
	for _, tc := range vaultReferenceCases {
		f.Add(tc.value)
	}
	f.Fuzz(func(t *testing.T, value string) {
		path, field, err := parseVaultReference(value)
		if err != nil {
			if path != "" || field != "" {
				t.Fatalf("error %v returned with path %q field %q", err, path, field)
			}
			return
		}
		if field == "" || path == "" || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
			t.Fatalf("accepted %q as path %q field %q", value, path, field)
		}
		for _, segment := range strings.Split(path, "/") {
			if segment == "" || segment == "." || segment == ".." {
				t.Fatalf("accepted %q with path segment %q", value, segment)
			}
		}
		segments := strings.Split(path, "/")
		for i, segment := range segments {
			segments[i] = url.PathEscape(segment)
		}
		again := vaultScheme + strings.Join(segments, "/") + "?key=" + url.QueryEscape(field)
		path2, field2, err := parseVaultReference(again)
		if err != nil || path2 != path || field2 != field {
			t.Fatalf("%q → (%q, %q) but its escaped form %q → (%q, %q, %v)", value, path, field, again, path2, field2, err)
		}
	})
}
