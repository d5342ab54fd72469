package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distribution/reference"
	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// hubRegistry is how Docker names Docker Hub in an image reference.
const hubRegistry = "docker.io"

// hubKey is the key under which docker login stores Docker Hub credentials.
const hubKey = "https://index.docker.io/v1/"

// hubAliases are the host names that mean Docker Hub in a credentials file
// or in EXECUTOR_DOCKER_REPOSITORY.
var hubAliases = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// registryForImage names the registry Docker pulls an image from: the
// host[:port] leading the reference, or "docker.io" for Docker Hub images
// ("busybox", "team/app"). It follows Docker's own rule through
// distribution/reference: the first path component is a registry only if
// it contains '.' or ':', is "localhost", or has upper-case letters.
func registryForImage(image string) (string, error) {
	named, err := parseNormalizedImage(image)
	if err != nil {
		return "", fmt.Errorf("image %q is not a valid Docker image reference: %w", image, err)
	}
	return reference.Domain(named), nil
}

// canonicalRegistry reduces a credentials key or a registry setting to the
// host[:port] it names, so that "https://registry.local:5000/v1/",
// "http://registry.local:5000" and "registry.local:5000" all match, and
// every name of Docker Hub becomes "docker.io". Host names are not case
// sensitive, so neither is the result.
func canonicalRegistry(name string) string {
	host := strings.ToLower(strings.TrimSpace(name))
	for _, scheme := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(host, scheme); ok {
			host = rest
			break
		}
	}
	if slash := strings.IndexByte(host, '/'); slash >= 0 {
		host = strings.TrimSpace(host[:slash])
	}
	if hubAliases[host] {
		return hubRegistry
	}
	return host
}

// matchCredentialKey picks the entry of one credentials file that serves
// registry: the key spelled exactly as Docker spells it ("host:port", or
// hubKey for Docker Hub) if present, else the first, in sorted order, of
// the keys that normalise to the same registry.
func matchCredentialKey[V any](configs map[string]V, registry string) (string, bool) {
	want := canonicalRegistry(registry)
	exact := registry
	if want == hubRegistry {
		exact = hubKey
	}
	if _, ok := configs[exact]; ok {
		return exact, true
	}
	var matches []string
	for key := range configs {
		if canonicalRegistry(key) == want {
			matches = append(matches, key)
		}
	}
	if len(matches) == 0 {
		return "", false
	}
	slices.Sort(matches)
	return matches[0], true
}

// credentialFile is one place Docker credentials may be found.
type credentialFile struct {
	path  string
	scope string // "sandbox" or "host"
	// sandbox is set for the task's files: they are read with
	// readSandboxFile.
	sandbox string
}

// credentialFiles lists the Docker config files to search, most specific
// first: those the Mesos fetcher put in the task's sandbox, then the
// host's, found the way the docker CLI finds them: the operator's
// DOCKER_CONFIG, else the executor user's home directory (never a HOME the
// task set; see settingsEnv.hostDockerConfig).
func credentialFiles(sandbox string, host hostDockerLocation) []credentialFile {
	var files []credentialFile
	if sandbox != "" {
		files = append(files,
			credentialFile{path: filepath.Join(sandbox, ".docker", "config.json"), scope: "sandbox", sandbox: sandbox},
			credentialFile{path: filepath.Join(sandbox, ".dockercfg"), scope: "sandbox", sandbox: sandbox})
	}
	if host.configDir != "" {
		return append(files, credentialFile{path: filepath.Join(host.configDir, "config.json"), scope: "host"})
	}
	home := host.home
	if home == "" {
		home = "/root"
	}
	return append(files,
		credentialFile{path: filepath.Join(home, ".docker", "config.json"), scope: "host"},
		credentialFile{path: filepath.Join(home, ".dockercfg"), scope: "host"})
}

// maxCredentialFileSize bounds what is read of a credentials file: real
// ones hold a few entries.
const maxCredentialFileSize = 1 << 20

// readSandboxFile reads the file at path, which lies in sandbox, without
// following a symbolic link at any step below the sandbox, and only if it
// is a regular file. The sandbox is the task's: an archive the fetcher
// unpacked there could otherwise link .docker (or config.json) to the
// host's credentials and have them sent as the task's own.
func readSandboxFile(sandbox, path string) ([]byte, error) {
	rel, err := filepath.Rel(sandbox, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s is not inside the sandbox %s", path, sandbox)
	}
	dirFD, err := unix.Open(sandbox, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: sandbox, Err: err}
	}
	components := strings.Split(rel, string(filepath.Separator))
	for i, component := range components {
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i < len(components)-1 {
			flags |= unix.O_DIRECTORY
		} else {
			// A FIFO must not block the launch.
			flags |= unix.O_NONBLOCK
		}
		fd, err := unix.Openat(dirFD, component, flags, 0)
		unix.Close(dirFD)
		if errors.Is(err, unix.ELOOP) || (errors.Is(err, unix.ENOTDIR) && isSymlinkAt(sandbox, components[:i+1])) {
			return nil, fmt.Errorf("%s: a symbolic link in the sandbox; refused (credentials files in the sandbox must be regular files)", path)
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		dirFD = fd
	}
	file := os.NewFile(uintptr(dirFD), path)
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s); refused", path, info.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(file, maxCredentialFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCredentialFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; refused", path, maxCredentialFileSize)
	}
	return data, nil
}

// isSymlinkAt reports whether sandbox/components is a symbolic link, to
// name the reason when a link stood where a directory was expected.
func isSymlinkAt(sandbox string, components []string) bool {
	info, err := os.Lstat(filepath.Join(append([]string{sandbox}, components...)...))
	return err == nil && info.Mode()&os.ModeSymlink != 0
}

// registryCredentials are the credentials chosen for one pull.
type registryCredentials struct {
	auth docker.AuthConfiguration
	// found is false for an anonymous pull.
	found bool
	// file and key say where the credentials came from; viaFallback marks
	// an entry found through EXECUTOR_DOCKER_REPOSITORY.
	file        string
	key         string
	viaFallback bool
	// helper is the credential helper program that supplied them, and
	// helperSource the setting of file that named it (credHelpers or
	// credsStore); both empty for an inline entry.
	helper       string
	helperSource string
}

// describe says where the credentials came from, for logs and messages.
// It never includes a secret.
func (c registryCredentials) describe() string {
	if !c.found {
		return "none (anonymous pull)"
	}
	text := fmt.Sprintf("entry %q of %s", c.key, c.file)
	if c.helper != "" {
		text = fmt.Sprintf("credential helper %s (%s of %s)", c.helper, c.helperSource, c.file)
	}
	if c.viaFallback {
		text += " (matched EXECUTOR_DOCKER_REPOSITORY)"
	}
	return text
}

// secrets lists the credential values that must never be shown, in every
// form they could be shown in.
func (c registryCredentials) secrets() []string {
	a := c.auth
	var out []string
	for _, s := range []string{a.Password, a.IdentityToken, a.RegistryToken} {
		if s != "" {
			out = append(out, s)
		}
	}
	if a.Password != "" {
		plain := []byte(a.Username + ":" + a.Password)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			out = append(out, enc.EncodeToString(plain))
		}
	}
	return out
}

// minScrubbedSecretLength keeps scrubbing from garbling messages: replacing
// every "a" of a message because the password is "a" would help nobody.
const minScrubbedSecretLength = 4

// scrub replaces every credential value in text. Docker does not echo
// credentials in its errors; this makes sure a future version or a proxy
// in between cannot make us print them.
func (c registryCredentials) scrub(text string) string {
	for _, secret := range c.secrets() {
		if len(secret) >= minScrubbedSecretLength {
			text = strings.ReplaceAll(text, secret, redactedValue)
		}
	}
	return text
}

// findCredentials searches files in order for credentials for registry:
// within a file the entry for the registry itself wins, then the entry for
// fallbackRegistry (EXECUTOR_DOCKER_REPOSITORY). Files that are missing are
// skipped; files that cannot be read or parsed are skipped with a warning.
// A host file's credential helper serves the registries it names
// (credentialFileContent.lookup); a helper that fails is an error.
func findCredentials(ctx context.Context, files []credentialFile, registry, fallbackRegistry string, helper credentialHelper, logger *log.Entry) (registryCredentials, error) {
	for _, file := range files {
		content, ok := loadCredentialFile(file, logger)
		if !ok {
			continue
		}
		creds, err := content.lookup(ctx, file, registry, registry, helper, logger)
		if err != nil || creds.found {
			return creds, err
		}
		if fallbackRegistry == "" || canonicalRegistry(fallbackRegistry) == canonicalRegistry(registry) {
			continue
		}
		creds, err = content.lookup(ctx, file, registry, fallbackRegistry, helper, logger)
		if err != nil || creds.found {
			creds.viaFallback = creds.found
			return creds, err
		}
	}
	return registryCredentials{}, nil
}

// credentialsFor finds the credentials for registry and says in the log
// which it chose, or that the pull will be anonymous.
func credentialsFor(ctx context.Context, registry string, files []credentialFile, fallbackRegistry string, helper credentialHelper, logger *log.Entry) (registryCredentials, error) {
	creds, err := findCredentials(ctx, files, registry, fallbackRegistry, helper, logger)
	if err != nil {
		logger.WithError(err).Error("cannot get the credentials for the registry")
		return creds, err
	}
	chosen := logger.WithFields(log.Fields{"credentials": creds.describe(), "username": creds.auth.Username})
	switch {
	case creds.viaFallback:
		// Credentials stored for another registry go to this one: say so
		// loudly, an operator may not expect it.
		chosen.Warnf("no Docker credentials for registry %s; sending those of EXECUTOR_DOCKER_REPOSITORY (%s) to it", registry, fallbackRegistry)
	case creds.found:
		chosen.Info("using Docker credentials for the registry")
	default:
		logger.Warnf("no Docker credentials for registry %s in the task sandbox or the host's Docker config; pulling anonymously", registry)
	}
	return creds, nil
}

func chosenCredentials(auth docker.AuthConfiguration, registry, path, key string, viaFallback bool) registryCredentials {
	// The daemon sends the credentials to the registry being pulled from,
	// whatever key they were stored under.
	auth.ServerAddress = registry
	return registryCredentials{auth: auth, found: true, file: path, key: key, viaFallback: viaFallback}
}

// credentialFileContent is what one Docker config file holds: inline
// entries and, in config.json, the credential helpers it names.
type credentialFileContent struct {
	auths map[string]docker.AuthConfiguration
	// credsStore is the helper for every registry without a credHelpers
	// entry; credHelpers maps registries to helpers.
	credsStore  string
	credHelpers map[string]string
}

// helperFor names the helper that serves registry, as the docker CLI
// chooses it: the credHelpers entry for the registry (matched as inline
// entries are, by matchCredentialKey), else
// credsStore. source says which setting named it. A credHelpers entry
// naming no helper ("") means the file's inline entry, as for the CLI.
func (c credentialFileContent) helperFor(registry string) (name, source string, ok bool) {
	if key, found := matchCredentialKey(c.credHelpers, registry); found {
		name := c.credHelpers[key]
		return name, "credHelpers", name != ""
	}
	if c.credsStore != "" {
		return c.credsStore, "credsStore", true
	}
	return "", "", false
}

// helperServerURL is the server URL a helper is asked about, as the docker
// CLI asks it: Docker Hub's legacy key, else the registry's host[:port].
func helperServerURL(registry string) string {
	if host := canonicalRegistry(registry); host != hubRegistry {
		return host
	}
	return hubKey
}

// lookup finds in one file the credentials for target (the registry
// pulled from, or the fallback), to be sent to registry. As with the docker
// CLI, a helper that serves target is the file's only word on it: its
// inline entry is not used, even when the helper has none.
func (c credentialFileContent) lookup(ctx context.Context, file credentialFile, registry, target string, helper credentialHelper, logger *log.Entry) (registryCredentials, error) {
	name, source, ok := c.helperFor(target)
	if !ok {
		key, found := matchCredentialKey(c.auths, target)
		if !found {
			return registryCredentials{}, nil
		}
		return chosenCredentials(c.auths[key], registry, file.path, key, false), nil
	}
	program := helperProgramPrefix + name
	answer, err := helper.get(ctx, name, helperServerURL(target))
	if err != nil {
		return registryCredentials{}, fmt.Errorf("cannot get the credentials for registry %s from the credential helper %s (named by %s in %s): %w",
			canonicalRegistry(target), program, source, file.path, err)
	}
	if !answer.found {
		logger.WithFields(log.Fields{"helper": program, "credentials_file": file.path}).
			Infof("the credential helper has no credentials for %s", canonicalRegistry(target))
		return registryCredentials{}, nil
	}
	auth := docker.AuthConfiguration{Username: answer.username, Password: answer.secret}
	if answer.username == identityTokenUsername {
		auth = docker.AuthConfiguration{IdentityToken: answer.secret}
	}
	creds := chosenCredentials(auth, registry, file.path, "", false)
	creds.helper, creds.helperSource = program, source
	return creds, nil
}

// loadCredentialFile parses one Docker config file with go-dockerclient,
// which reads both config.json ({"auths": …}) and the legacy .dockercfg,
// and reads the credential helpers a host file names. A task's file may
// not name a helper: that would make the host run a program of the task's
// choice.
func loadCredentialFile(file credentialFile, logger *log.Entry) (credentialFileContent, bool) {
	logger = logger.WithField("credentials_file", file.path)
	var data []byte
	var err error
	if file.sandbox != "" {
		data, err = readSandboxFile(file.sandbox, file.path)
	} else {
		data, err = os.ReadFile(file.path)
	}
	if errors.Is(err, os.ErrNotExist) {
		logger.Debug("no Docker credentials file here")
		return credentialFileContent{}, false
	}
	if err != nil {
		logger.WithError(err).Warn("cannot read the Docker credentials file; ignoring it")
		return credentialFileContent{}, false
	}
	var content credentialFileContent
	usesHelpers := readCredentialHelpers(data, &content)
	if usesHelpers && file.sandbox != "" {
		logger.WithFields(log.Fields{"credsStore": content.credsStore, "credHelpers": len(content.credHelpers)}).
			Warn("the task's Docker credentials file names credential helpers; ignored: only the host's Docker config may make the executor run a program. Only its inline \"auths\" entries are used")
		content.credsStore, content.credHelpers = "", nil
	}
	auths, err := docker.NewAuthConfigurations(bytes.NewReader(data))
	if err != nil && usesHelpers {
		// A file with only helpers and no inline entry fails to parse.
		logger.WithError(err).Debug("no inline credentials in the Docker credentials file")
		return content, file.sandbox == ""
	}
	if err != nil {
		logger.WithError(err).Warn("cannot parse the Docker credentials file (want config.json or .dockercfg format); ignoring it")
		return credentialFileContent{}, false
	}
	content.auths = auths.Configs
	return content, true
}

// readCredentialHelpers reads the credsStore and credHelpers of a
// config.json into content, and reports whether it names any.
func readCredentialHelpers(data []byte, content *credentialFileContent) bool {
	var helpers struct {
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if json.Unmarshal(data, &helpers) != nil || (helpers.CredsStore == "" && len(helpers.CredHelpers) == 0) {
		return false
	}
	content.credsStore, content.credHelpers = helpers.CredsStore, helpers.CredHelpers
	return true
}
