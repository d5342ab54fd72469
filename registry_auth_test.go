package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestRegistryForImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for image, want := range map[string]string{
		"busybox":                             "docker.io",
		"busybox:1.35":                        "docker.io",
		"team/app:1":                          "docker.io",
		"docker.io/library/busybox":           "docker.io",
		"index.docker.io/team/app":            "docker.io",
		"registry.local:5000/team/app:1":      "registry.local:5000",
		"registry.local/team/app":             "registry.local",
		"127.0.0.1:5000/app@" + digest:        "127.0.0.1:5000",
		"127.0.0.1:5000/team/app:2@" + digest: "127.0.0.1:5000",
		"localhost/app":                       "localhost",
		"localhost:5000/app":                  "localhost:5000",
		"Registry/app":                        "Registry",
		"[::1]:5000/app":                      "[::1]:5000",
		"quay.io/org/sub/app:v1":              "quay.io",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
	} {
		got, err := registryForImage(image)
		if err != nil || got != want {
			t.Errorf("registryForImage(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
	for _, image := range []string{"", "app:tag:extra", "UPPER", "registry.local:5000/"} {
		if got, err := registryForImage(image); err == nil {
			t.Errorf("registryForImage(%q) = %q, want an error", image, got)
		}
	}
}

func TestCanonicalRegistry(t *testing.T) {
	checkStringFunc(t, "canonicalRegistry", canonicalRegistry, map[string]string{
		"https://index.docker.io/v1/":      "docker.io",
		"index.docker.io":                  "docker.io",
		"docker.io":                        "docker.io",
		"https://registry-1.docker.io/v2/": "docker.io",
		"HTTPS://Index.Docker.IO/v1/":      "docker.io",
		"registry.local:5000":              "registry.local:5000",
		"https://registry.local:5000/v1/":  "registry.local:5000",
		"http://registry.local:5000":       "registry.local:5000",
		"registry.local:5000/team":         "registry.local:5000",
		" Registry.Local:5000 ":            "registry.local:5000",
		"":                                 "",
	})
}

func TestMatchCredentialKey(t *testing.T) {
	entry := docker.AuthConfiguration{Username: "u", Password: "p"}
	cases := []struct {
		name     string
		keys     []string
		registry string
		want     string // "" for no match
	}{
		{"hub by docker login's key", []string{hubKey}, "docker.io", hubKey},
		{"hub by alias", []string{"index.docker.io"}, "docker.io", "index.docker.io"},
		{"hub by registry-1 alias", []string{"https://registry-1.docker.io/v2/"}, "docker.io", "https://registry-1.docker.io/v2/"},
		{"hub prefers the exact key", []string{"docker.io", hubKey, "index.docker.io"}, "docker.io", hubKey},
		{"host:port exact", []string{"registry.local:5000", hubKey}, "registry.local:5000", "registry.local:5000"},
		{"host:port normalised", []string{"https://registry.local:5000/v1/"}, "registry.local:5000", "https://registry.local:5000/v1/"},
		{"exact beats normalised", []string{"https://registry.local:5000/v1/", "registry.local:5000"}, "registry.local:5000", "registry.local:5000"},
		{"several normalised: sorted first", []string{"https://registry.local:5000/v2/", "http://registry.local:5000"}, "registry.local:5000", "http://registry.local:5000"},
		{"case-insensitive host", []string{"Registry.Local:5000"}, "registry.local:5000", "Registry.Local:5000"},
		{"port matters", []string{"registry.local:5001", "registry.local"}, "registry.local:5000", ""},
		{"other registry", []string{hubKey}, "registry.local:5000", ""},
		{"hub creds are not for a private registry named like Hub's path", []string{"registry.local:5000"}, "docker.io", ""},
		{"setting given as a URL", []string{"registry.local:5000"}, "https://registry.local:5000/v1/", "registry.local:5000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			configs := map[string]docker.AuthConfiguration{}
			for _, key := range tc.keys {
				configs[key] = entry
			}
			got, ok := matchCredentialKey(configs, tc.registry)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("matchCredentialKey(%v, %q) = %q, %v; want %q", tc.keys, tc.registry, got, ok, tc.want)
			}
		})
	}
}

func TestCredentialFiles(t *testing.T) {
	paths := func(files []credentialFile) string {
		var out []string
		for _, f := range files {
			out = append(out, f.scope+":"+f.path)
		}
		return strings.Join(out, " ")
	}
	cases := []struct {
		name    string
		sandbox string
		host    hostDockerLocation
		want    string
	}{
		{"sandbox then home", "/sb", hostDockerLocation{home: "/home/mesos"},
			"sandbox:/sb/.docker/config.json sandbox:/sb/.dockercfg host:/home/mesos/.docker/config.json host:/home/mesos/.dockercfg"},
		{"DOCKER_CONFIG replaces the home directory", "/sb", hostDockerLocation{configDir: "/etc/docker-auth"},
			"sandbox:/sb/.docker/config.json sandbox:/sb/.dockercfg host:/etc/docker-auth/config.json"},
		{"no home means /root", "/sb", hostDockerLocation{},
			"sandbox:/sb/.docker/config.json sandbox:/sb/.dockercfg host:/root/.docker/config.json host:/root/.dockercfg"},
		{"no sandbox", "", hostDockerLocation{home: "/h"}, "host:/h/.docker/config.json host:/h/.dockercfg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := paths(credentialFiles(tc.sandbox, tc.host)); got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// authEntry is a credentials entry in the format docker login writes.
func authEntry(user, password string) string {
	return `{"auth": "` + base64.StdEncoding.EncodeToString([]byte(user+":"+password)) + `"}`
}

// configJSON is a config.json with the given key → entry JSON pairs.
func configJSON(entries ...string) string {
	return `{"auths": {` + strings.Join(entries, ",") + `}}`
}

// legacyDockercfg is a .dockercfg: the same map without the "auths" wrapper.
func legacyDockercfg(entries ...string) string {
	return `{` + strings.Join(entries, ",") + `}`
}

func pair(key, entry string) string { return `"` + key + `": ` + entry }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFindCredentialsPrecedence(t *testing.T) {
	const registry = "registry.local:5000"
	const mirror = "mirror.example"
	type file struct{ rel, content string }
	cases := []struct {
		name         string
		files        []file // relative to a temp dir holding sandbox/ and home/
		fallback     string
		wantUser     string // "" for anonymous
		wantFile     string
		wantFallback bool
		wantWarning  string
	}{
		{name: "host config.json", files: []file{{"home/.docker/config.json", configJSON(pair(registry, authEntry("host", "pw-host")))}},
			fallback: hubKey, wantUser: "host", wantFile: "home/.docker/config.json"},
		{name: "host legacy .dockercfg", files: []file{{"home/.dockercfg", legacyDockercfg(pair("https://"+registry+"/v1/", authEntry("legacy", "pw-legacy")))}},
			fallback: hubKey, wantUser: "legacy", wantFile: "home/.dockercfg"},
		{name: "sandbox beats host", files: []file{
			{"home/.docker/config.json", configJSON(pair(registry, authEntry("host", "pw-host")))},
			{"sandbox/.dockercfg", legacyDockercfg(pair(registry, authEntry("task", "pw-task")))}},
			fallback: hubKey, wantUser: "task", wantFile: "sandbox/.dockercfg"},
		{name: "sandbox config.json beats sandbox .dockercfg", files: []file{
			{"sandbox/.dockercfg", legacyDockercfg(pair(registry, authEntry("legacy", "pw-legacy")))},
			{"sandbox/.docker/config.json", configJSON(pair(registry, authEntry("modern", "pw-modern")))}},
			fallback: hubKey, wantUser: "modern", wantFile: "sandbox/.docker/config.json"},
		{name: "image registry beats the fallback within a file", files: []file{
			{"home/.docker/config.json", configJSON(pair(mirror, authEntry("mirror", "pw-mirror")), pair(registry, authEntry("own", "pw-own")))}},
			fallback: mirror, wantUser: "own", wantFile: "home/.docker/config.json"},
		{name: "fallback entry, normalised", files: []file{
			{"home/.docker/config.json", configJSON(pair("https://"+mirror+"/v1/", authEntry("mirror", "pw-mirror")))}},
			fallback: "http://" + mirror, wantUser: "mirror", wantFile: "home/.docker/config.json", wantFallback: true},
		{name: "files are searched in order, each for both entries", files: []file{
			{"sandbox/.dockercfg", legacyDockercfg(pair(mirror, authEntry("task-mirror", "pw-1")))},
			{"home/.docker/config.json", configJSON(pair(registry, authEntry("host-own", "pw-2")))}},
			fallback: mirror, wantUser: "task-mirror", wantFile: "sandbox/.dockercfg", wantFallback: true},
		{name: "no entry anywhere", files: []file{{"home/.docker/config.json", configJSON(pair("other.example", authEntry("x", "pw-x")))}},
			fallback: hubKey},
		{name: "no fallback chosen: Docker Hub credentials stay with Docker Hub", files: []file{
			{"home/.docker/config.json", configJSON(pair(hubKey, authEntry("hub", "pw-hub")))}},
			fallback: ""},
		{name: "unparseable sandbox file is skipped with a warning", files: []file{
			{"sandbox/.docker/config.json", "{not json"},
			{"home/.docker/config.json", configJSON(pair(registry, authEntry("host", "pw-host")))}},
			fallback: hubKey, wantUser: "host", wantFile: "home/.docker/config.json", wantWarning: "cannot parse"},
		{name: "entry without a colon is skipped with a warning", files: []file{
			{"sandbox/.dockercfg", legacyDockercfg(pair(registry, `{"auth": "`+base64.StdEncoding.EncodeToString([]byte("nocolon"))+`"}`))}},
			fallback: hubKey, wantWarning: "cannot parse"},
		{name: "credential helpers of the task's file are reported and ignored", files: []file{
			{"sandbox/.docker/config.json", `{"auths": {}, "credsStore": "desktop", "credHelpers": {"` + registry + `": "ecr-login"}}`}},
			fallback: hubKey, wantWarning: "credential helpers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				writeFile(t, filepath.Join(dir, f.rel), f.content)
			}
			logger, hook := logtest.NewNullLogger()
			files := credentialFiles(filepath.Join(dir, "sandbox"), hostDockerLocation{home: filepath.Join(dir, "home")})
			got := findInlineCredentials(t, files, registry, tc.fallback, log.NewEntry(logger))
			if got.found != (tc.wantUser != "") || got.auth.Username != tc.wantUser {
				t.Fatalf("found %v user %q (%s), want user %q", got.found, got.auth.Username, got.describe(), tc.wantUser)
			}
			if tc.wantUser != "" {
				if got.file != filepath.Join(dir, tc.wantFile) || got.viaFallback != tc.wantFallback {
					t.Errorf("from %s (fallback %v), want %s (fallback %v)", got.file, got.viaFallback, tc.wantFile, tc.wantFallback)
				}
				if got.auth.ServerAddress != registry {
					t.Errorf("ServerAddress %q, want the registry pulled from, %q", got.auth.ServerAddress, registry)
				}
			}
			warned := false
			for _, entry := range hook.AllEntries() {
				if entry.Level == log.WarnLevel && strings.Contains(entry.Message, tc.wantWarning) {
					warned = true
				}
				if entry.Level <= log.WarnLevel && tc.wantWarning == "" {
					t.Errorf("unexpected warning %q", entry.Message)
				}
			}
			if tc.wantWarning != "" && !warned {
				t.Errorf("no warning containing %q", tc.wantWarning)
			}
		})
	}
}

func TestFindCredentialsForDockerHub(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".docker", "config.json"), configJSON(
		pair("registry.local:5000", authEntry("private", "pw-private")),
		pair("https://index.docker.io/v1/", authEntry("hub", "pw-hub"))))
	logger, _ := logtest.NewNullLogger()
	files := credentialFiles("", hostDockerLocation{configDir: filepath.Join(dir, ".docker")})
	registry, err := registryForImage("team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	got := findInlineCredentials(t, files, registry, "registry.local:5000", log.NewEntry(logger))
	if got.auth.Username != "hub" || got.viaFallback {
		t.Fatalf("a Docker Hub image got %s (user %q), want the Hub entry", got.describe(), got.auth.Username)
	}
}

func TestIdentityTokenEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	writeFile(t, path, configJSON(pair("registry.local", `{"auth": "`+base64.StdEncoding.EncodeToString([]byte("<token>:"))+`", "identitytoken": "tok-123456"}`)))
	logger, _ := logtest.NewNullLogger()
	got := findInlineCredentials(t, []credentialFile{{path: path, scope: "host"}}, "registry.local", hubKey, log.NewEntry(logger))
	if !got.found || got.auth.IdentityToken != "tok-123456" || got.auth.Password != "" {
		t.Fatalf("identity token entry read as %+v", got.auth)
	}
	if scrubbed := got.scrub("refused tok-123456"); strings.Contains(scrubbed, "tok-123456") {
		t.Fatalf("identity token not scrubbed: %q", scrubbed)
	}
}

func TestScrubRemovesEveryFormOfTheCredentials(t *testing.T) {
	creds := registryCredentials{found: true, auth: docker.AuthConfiguration{Username: "alice", Password: "s3cret?>>"}}
	plain := []byte("alice:s3cret?>>")
	forms := []string{"s3cret?>>"}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString(plain))
	}
	for _, form := range forms {
		text := creds.scrub("error: got " + form + " from proxy")
		if strings.Contains(text, form) || !strings.Contains(text, redactedValue) {
			t.Errorf("scrub left %q in %q", form, text)
		}
	}
	short := registryCredentials{found: true, auth: docker.AuthConfiguration{Username: "u", Password: "a"}}
	if got := short.scrub("manifest unknown"); got != "manifest unknown" {
		t.Errorf("a one-letter password garbled the message: %q", got)
	}
	if d := creds.describe(); strings.Contains(d, "s3cret") {
		t.Errorf("describe shows the password: %q", d)
	}
}

// FuzzRegistryForImage checks registryForImage on anything, and against
// the executor's own image grammar (dockerspec.go): for an image the task
// validation accepts, the registry is a single host[:port] that leads the
// image, or Docker Hub. registryForImage may refuse a few images the task
// grammar lets through, as Docker does (a bare 64-hex name is an image ID;
// "[0]/x" is a Hub path, not an IPv6 host); its error then names the image.
func FuzzRegistryForImage(f *testing.F) {
	for _, seed := range []string{"busybox", "team/app:1", "registry.local:5000/a/b:c", "localhost/x",
		"[::1]:5000/app", "Registry/app", "docker.io/library/busybox", "index.docker.io/a",
		"127.0.0.1:1/a@sha256:" + strings.Repeat("0", 64), "https://registry.local/v1/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, image string) {
		canonical := canonicalRegistry(image)
		if strings.Contains(canonical, "/") || canonicalRegistry(canonical) != canonical {
			t.Fatalf("canonicalRegistry(%q) = %q: not a stable host[:port]", image, canonical)
		}
		registry, err := registryForImage(image)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(image)) {
				t.Fatalf("registryForImage(%q) error does not name the image: %v", image, err)
			}
			return
		}
		if _, err := parseImageReference(image); err != nil {
			return
		}
		if registry == "" || strings.Contains(registry, "/") {
			t.Fatalf("registryForImage(%q) = %q", image, registry)
		}
		if registry != hubRegistry && !strings.HasPrefix(image, registry+"/") {
			t.Fatalf("registryForImage(%q) = %q, which does not lead the image", image, registry)
		}
	})
}

// TestSandboxCredentialSymlinkRefused: a fetched archive that links the
// sandbox's .docker (or its config.json, or .dockercfg) to the host's
// credentials must not have them sent as the task's own; the link is
// refused with a warning, and a real file next to it still counts.
func TestSandboxCredentialSymlinkRefused(t *testing.T) {
	const registry = "registry.local:5000"
	hostEntry := configJSON(pair(registry, authEntry("host", "pw-host")))
	cases := []struct {
		name  string
		setup func(t *testing.T, sandbox, hostDir string)
	}{
		{"directory .docker linked to the host's", func(t *testing.T, sandbox, hostDir string) {
			mustSymlink(t, filepath.Join(hostDir, ".docker"), filepath.Join(sandbox, ".docker"))
		}},
		{"config.json linked to the host's", func(t *testing.T, sandbox, hostDir string) {
			if err := os.MkdirAll(filepath.Join(sandbox, ".docker"), 0o700); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, filepath.Join(hostDir, ".docker", "config.json"), filepath.Join(sandbox, ".docker", "config.json"))
		}},
		{".dockercfg linked to the host's config", func(t *testing.T, sandbox, hostDir string) {
			mustSymlink(t, filepath.Join(hostDir, ".docker", "config.json"), filepath.Join(sandbox, ".dockercfg"))
		}},
		{"relative link climbing out of the sandbox", func(t *testing.T, sandbox, hostDir string) {
			rel, err := filepath.Rel(sandbox, filepath.Join(hostDir, ".docker", "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, rel, filepath.Join(sandbox, ".dockercfg"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sandbox, hostDir := filepath.Join(dir, "sandbox"), filepath.Join(dir, "host-home")
			writeFile(t, filepath.Join(hostDir, ".docker", "config.json"), hostEntry)
			if err := os.MkdirAll(sandbox, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, sandbox, hostDir)
			logger, hook := logtest.NewNullLogger()
			// The host's own files are elsewhere: only a followed link
			// could find the host entry.
			files := credentialFiles(sandbox, hostDockerLocation{configDir: filepath.Join(dir, "operator-docker-config")})
			got := findInlineCredentials(t, files, registry, "", log.NewEntry(logger))
			if got.found {
				t.Fatalf("credentials found through a symbolic link: %s (user %q)", got.describe(), got.auth.Username)
			}
			warned := false
			for _, entry := range hook.AllEntries() {
				if entry.Level == log.WarnLevel && strings.Contains(fmt.Sprint(entry.Data["error"]), "symbolic link") {
					warned = true
				}
			}
			if !warned {
				t.Errorf("no warning about the symbolic link")
			}
		})
	}

	t.Run("regular file still read", func(t *testing.T) {
		sandbox := t.TempDir()
		writeFile(t, filepath.Join(sandbox, ".docker", "config.json"), configJSON(pair(registry, authEntry("task", "pw-task"))))
		logger, _ := logtest.NewNullLogger()
		got := findInlineCredentials(t, credentialFiles(sandbox, hostDockerLocation{configDir: t.TempDir()}), registry, "", log.NewEntry(logger))
		if got.auth.Username != "task" {
			t.Fatalf("the sandbox's own file was not used: %s", got.describe())
		}
	})

	t.Run("FIFO refused without blocking", func(t *testing.T) {
		sandbox := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(sandbox, ".dockercfg"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readSandboxFile(sandbox, filepath.Join(sandbox, ".dockercfg")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("a FIFO gave %v, want a refusal", err)
		}
	})

	t.Run("path outside the sandbox refused", func(t *testing.T) {
		sandbox := t.TempDir()
		if _, err := readSandboxFile(sandbox, filepath.Join(sandbox, "..", "elsewhere")); err == nil {
			t.Fatal("a path outside the sandbox was read")
		}
	})
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
