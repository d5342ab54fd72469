package main

import (
	"bytes"
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
	named, err := reference.ParseNormalizedNamed(image)
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
func matchCredentialKey(configs map[string]docker.AuthConfiguration, registry string) (string, bool) {
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
}

// describe says where the credentials came from, for logs and messages.
// It never includes a secret.
func (c registryCredentials) describe() string {
	if !c.found {
		return "none (anonymous pull)"
	}
	text := fmt.Sprintf("entry %q of %s", c.key, c.file)
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
func findCredentials(files []credentialFile, registry, fallbackRegistry string, logger *log.Entry) registryCredentials {
	for _, file := range files {
		configs, ok := loadCredentialFile(file, logger)
		if !ok {
			continue
		}
		if key, ok := matchCredentialKey(configs, registry); ok {
			return chosenCredentials(configs[key], registry, file.path, key, false)
		}
		if fallbackRegistry == "" || canonicalRegistry(fallbackRegistry) == canonicalRegistry(registry) {
			continue
		}
		if key, ok := matchCredentialKey(configs, fallbackRegistry); ok {
			return chosenCredentials(configs[key], registry, file.path, key, true)
		}
	}
	return registryCredentials{}
}

// credentialsFor finds the credentials for registry and says in the log
// which it chose, or that the pull will be anonymous.
func credentialsFor(registry string, files []credentialFile, fallbackRegistry string, logger *log.Entry) registryCredentials {
	creds := findCredentials(files, registry, fallbackRegistry, logger)
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
	return creds
}

func chosenCredentials(auth docker.AuthConfiguration, registry, path, key string, viaFallback bool) registryCredentials {
	// The daemon sends the credentials to the registry being pulled from,
	// whatever key they were stored under.
	auth.ServerAddress = registry
	return registryCredentials{auth: auth, found: true, file: path, key: key, viaFallback: viaFallback}
}

// loadCredentialFile parses one Docker config file with go-dockerclient,
// which reads both config.json ({"auths": …}) and the legacy .dockercfg.
func loadCredentialFile(file credentialFile, logger *log.Entry) (map[string]docker.AuthConfiguration, bool) {
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
		return nil, false
	}
	if err != nil {
		logger.WithError(err).Warn("cannot read the Docker credentials file; ignoring it")
		return nil, false
	}
	usesHelpers := warnAboutCredentialHelpers(data, logger)
	auths, err := docker.NewAuthConfigurations(bytes.NewReader(data))
	if err != nil && usesHelpers {
		// A file with only helpers and no inline entry fails to parse;
		// the warning about the helpers already says all there is to say.
		logger.WithError(err).Debug("no inline credentials in the Docker credentials file")
		return nil, false
	}
	if err != nil {
		logger.WithError(err).Warn("cannot parse the Docker credentials file (want config.json or .dockercfg format); ignoring it")
		return nil, false
	}
	return auths.Configs, true
}

// warnAboutCredentialHelpers says when a file delegates credentials to
// helper programs: the executor does not run them, so those registries get
// no credentials from this file. It reports whether the file uses helpers.
func warnAboutCredentialHelpers(data []byte, logger *log.Entry) bool {
	var helpers struct {
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if json.Unmarshal(data, &helpers) != nil || (helpers.CredsStore == "" && len(helpers.CredHelpers) == 0) {
		return false
	}
	logger.WithFields(log.Fields{"credsStore": helpers.CredsStore, "credHelpers": len(helpers.CredHelpers)}).
		Warn("the Docker credentials file uses credential helpers, which the executor does not run; only its inline \"auths\" entries are used")
	return true
}
