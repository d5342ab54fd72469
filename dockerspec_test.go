package main

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// dockerNamePattern is the daemon's rule for container names.
var dockerNamePattern = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func TestContainerName(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name   string
		taskID string
		want   string // exact name, when known
		prefix string // otherwise the name must start with this
	}{
		{name: "plain ID is kept", taskID: "web-1_a", want: "mesos-web-1_a"},
		{name: "dot is replaced and hashed", taskID: "a.b", prefix: "mesos-a_b-"},
		{name: "slash and space are replaced", taskID: "x/y z", prefix: "mesos-x_y_z-"},
		{name: "multi-byte rune becomes one underscore", taskID: "café", prefix: "mesos-caf_-"},
		{name: "long ID is truncated", taskID: long, prefix: "mesos-" + strings.Repeat("x", 128-6-13) + "-"},
		{name: "empty ID has no name", taskID: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := containerName(tt.taskID)
			if tt.prefix == "" {
				if got != tt.want {
					t.Fatalf("containerName(%q) = %q, want %q", tt.taskID, got, tt.want)
				}
				return
			}
			if !strings.HasPrefix(got, tt.prefix) {
				t.Fatalf("containerName(%q) = %q, want prefix %q", tt.taskID, got, tt.prefix)
			}
			if len(got) != len(tt.prefix)+containerNameHashLength {
				t.Fatalf("containerName(%q) = %q: want a %d-digit hash after %q", tt.taskID, got, containerNameHashLength, tt.prefix)
			}
			if len(got) > maxContainerNameLength || !dockerNamePattern.MatchString(got) {
				t.Fatalf("containerName(%q) = %q is not a valid Docker name of at most %d characters", tt.taskID, got, maxContainerNameLength)
			}
		})
	}
}

func TestContainerNameDistinguishesSanitisedIDs(t *testing.T) {
	ids := []string{"a.b", "a_b", "a/b", "a b"}
	seen := map[string]string{}
	for _, id := range ids {
		name := containerName(id)
		if other, ok := seen[name]; ok {
			t.Fatalf("task IDs %q and %q share the container name %q", other, id, name)
		}
		seen[name] = id
	}
	if containerName("a.b") != containerName("a.b") {
		t.Fatal("containerName is not stable")
	}
	longA := strings.Repeat("y", 150) + "A"
	longB := strings.Repeat("y", 150) + "B"
	if containerName(longA) == containerName(longB) {
		t.Fatalf("long task IDs differing after the cut share the name %q", containerName(longA))
	}
}

func TestSplitShellCommand(t *testing.T) {
	tests := []struct {
		line    string
		want    []string
		wantErr string
	}{
		{line: "", want: []string{}},
		{line: "   ", want: []string{}},
		{line: "/app/server --port 8080", want: []string{"/app/server", "--port", "8080"}},
		{line: `sh -c "echo hello world"`, want: []string{"sh", "-c", "echo hello world"}},
		{line: `echo 'single $HOME' "double"`, want: []string{"echo", "single $HOME", "double"}},
		{line: `echo ''`, want: []string{"echo", ""}},
		{line: `echo a\ b`, want: []string{"echo", "a b"}},
		{line: `echo $HOME ${PATH}`, want: []string{"echo", "$HOME", "${PATH}"}},
		{line: "echo `date`", want: []string{"echo", "`date`"}},
		{line: `echo "a;b" 'c|d'`, want: []string{"echo", "a;b", "c|d"}},
		{line: `echo "unbalanced`, wantErr: "unbalanced quote"},
		{line: `echo 'unbalanced`, wantErr: "unbalanced quote"},
		{line: `echo trailing\`, wantErr: "trailing backslash"},
		{line: `echo (x)`, wantErr: "parenthesis"},
		{line: `echo a; rm -rf /`, wantErr: `unquoted shell operator ";"`},
		{line: `server | tee log`, wantErr: `unquoted shell operator "|"`},
		{line: `server 2>err`, wantErr: `unquoted shell operator ">"`},
		{line: `server && other`, wantErr: `unquoted shell operator "&"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := splitShellCommand(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("splitShellCommand(%q) = %q, %v; want error containing %q", tt.line, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("splitShellCommand(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
			}
		})
	}
}

// quoteShellWord quotes a word so that a shell reads it back unchanged.
func quoteShellWord(word string) string {
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

func FuzzSplitShellCommand(f *testing.F) {
	for _, seed := range []string{"", "a b", `"a b" 'c'`, `a\ b`, "a;b", "`x`", "$(x)", `'it'\''s'`, "a\tb\nc"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := splitShellCommand(line)
		if err != nil {
			if words != nil {
				t.Fatalf("splitShellCommand(%q) returned words %q with error %v", line, words, err)
			}
			return
		}
		// Quoting the words and splitting again must give them back.
		quoted := make([]string, len(words))
		for i, word := range words {
			if !utf8.ValidString(word) {
				return // the parser reads runes, so invalid bytes become U+FFFD
			}
			quoted[i] = quoteShellWord(word)
		}
		again, err := splitShellCommand(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-splitting the quoted words %q of %q: %v", quoted, line, err)
		}
		if !reflect.DeepEqual(again, words) {
			t.Fatalf("splitShellCommand(%q) = %q, but its quoted form splits into %q", line, words, again)
		}
	})
}

func TestParseImageReference(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		image       string
		wantVersion string
		wantErr     string
	}{
		{image: "nginx", wantVersion: "latest"},
		{image: "nginx:1.25-alpine", wantVersion: "1.25-alpine"},
		{image: "library/nginx:1.25", wantVersion: "1.25"},
		{image: "registry.example.com:5000/team/web-api:v2.3.1", wantVersion: "v2.3.1"},
		{image: "localhost:5000/app", wantVersion: "latest"},
		{image: "[::1]:5000/app:dev", wantVersion: "dev"},
		{image: "Registry.Example.com/app:1", wantVersion: "1"},
		{image: "app@" + digest, wantVersion: digest},
		{image: "app:1.0@" + digest, wantVersion: "1.0"},
		{image: "my_org/my__app/a-b--c:x", wantVersion: "x"},
		{image: "app:" + strings.Repeat("t", 128), wantVersion: strings.Repeat("t", 128)},
		{image: "", wantErr: "image is empty"},
		{image: "Nginx", wantErr: `image "Nginx" is not a valid`},
		{image: "team/Web", wantErr: "not a valid Docker image reference"},
		{image: "nginx latest", wantErr: "not a valid Docker image reference"},
		{image: "nginx:", wantErr: "not a valid Docker image reference"},
		{image: "nginx:-x", wantErr: "not a valid Docker image reference"},
		{image: "app:" + strings.Repeat("t", 129), wantErr: "not a valid Docker image reference"},
		{image: "app@sha256:abc", wantErr: "not a valid Docker image reference"},
		{image: "app@md5:" + strings.Repeat("a", 32), wantErr: "not a valid Docker image reference"},
		{image: "/app", wantErr: "not a valid Docker image reference"},
		{image: "app/", wantErr: "not a valid Docker image reference"},
		{image: "a..b", wantErr: "not a valid Docker image reference"},
		{image: "host:port/app", wantErr: "not a valid Docker image reference"},
		{image: strings.Repeat("a", 256), wantErr: "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			ref, err := parseImageReference(tt.image)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseImageReference(%q) = %+v, %v; want error containing %q", tt.image, ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseImageReference(%q): %v", tt.image, err)
			}
			if got := ref.version(); got != tt.wantVersion {
				t.Fatalf("parseImageReference(%q).version() = %q, want %q", tt.image, got, tt.wantVersion)
			}
		})
	}
}
