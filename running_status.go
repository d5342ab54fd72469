package main

// running_status.go owns what TASK_RUNNING tells the scheduler, as Mesos'
// own Docker executor does: data = Docker's inspect answer as a JSON array
// of one object (the bytes Docker sent, captured on their way into
// go-dockerclient's decoder), and container_status.network_infos = one
// NetworkInfo per Docker network the container is on, named after it, with
// its IPv4 and global IPv6 addresses. Health updates re-send the network
// infos but not data.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/go-json-experiment/json/jsontext"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// maxRunningData caps TASK_RUNNING's data. An inspect answer is 4-10 KB;
// Mesos keeps every task's latest status in the agent's and the master's
// memory and state endpoints, and libprocess refuses very large messages,
// so an answer above this (thousands of labels or environment variables)
// is left out rather than cut: cut JSON would be useless to a scheduler.
const maxRunningData = 64 << 10

// rawBodySink collects the bytes of one response body as the client reads
// them, up to limit; over is set when the body did not fit.
type rawBodySink struct {
	buf   bytes.Buffer
	limit int
	over  bool
}

type rawBodyKey struct{}

// withRawBody returns a context whose Docker call records the response
// body it reads into sink (see capturingTransport).
func withRawBody(ctx context.Context, sink *rawBodySink) context.Context {
	return context.WithValue(ctx, rawBodyKey{}, sink)
}

// capturingTransport is the short client's HTTP transport: it passes every
// request to go-dockerclient's own transport unchanged and, for a request
// whose context carries a rawBodySink, copies the response body into the
// sink while the client decodes it. go-dockerclient decodes the inspect
// answer into its Container struct, which knows only some of Docker's
// fields; this keeps the answer as Docker wrote it without a second request
// and without speaking Docker's HTTP API here.
type capturingTransport struct {
	nextTransport
}

func (c capturingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if sink, ok := req.Context().Value(rawBodyKey{}).(*rawBodySink); ok {
		resp.Body = &teeBody{ReadCloser: resp.Body, sink: sink}
	}
	return resp, nil
}

// captureRawBodies wraps the client's transport in a capturingTransport.
func captureRawBodies(client *docker.Client) {
	wrapTransport(client, func(next nextTransport) http.RoundTripper { return capturingTransport{next} })
}

type teeBody struct {
	io.ReadCloser
	sink *rawBodySink
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.sink.over {
		if b.sink.buf.Len()+n > b.sink.limit {
			b.sink.over = true
			b.sink.buf.Reset()
		} else {
			b.sink.buf.Write(p[:n])
		}
	}
	return n, err
}

// inspectData turns one inspect answer (a JSON object) into TASK_RUNNING's
// data: a JSON array holding that object, as `docker inspect` prints it.
// It returns nil when the answer is not one JSON object or the result
// would exceed limit.
func inspectData(object []byte, limit int) []byte {
	object = bytes.TrimSpace(object)
	if len(object) == 0 || object[0] != '{' || len(object)+2 > limit || !json.Valid(object) {
		return nil
	}
	data := make([]byte, 0, len(object)+2)
	data = append(data, '[')
	data = append(data, object...)
	return append(data, ']')
}

// redactRunningData keeps secrets out of TASK_RUNNING's data: the
// container's environment as Docker reports it holds the values resolved
// from Vault and whatever the task's own variables hide (redact.go), and
// the scheduler (and anything reading the master's or the agent's state)
// must not get them. When nothing in the environment is secret the answer
// is passed on byte for byte; otherwise each Config.Env entry is replaced
// by its redacted form and every other token is copied as it came. data is
// dropped (nil) if it cannot be rewritten.
func redactRunningData(data []byte, container *docker.Container, alsoSecret []string) ([]byte, error) {
	if data == nil || container == nil || container.Config == nil {
		return data, nil
	}
	env := container.Config.Env
	redacted := make([]string, len(env))
	for i, kv := range env {
		redacted[i] = redactEnvVar(kv, alsoSecret...)
	}
	if slices.Equal(env, redacted) {
		return data, nil
	}
	var out bytes.Buffer
	out.Grow(len(data))
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	enc := jsontext.NewEncoder(&out)
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rewrite the inspect answer: %w", err)
		}
		if tok.Kind() == '"' {
			if index, ok := envIndex(string(dec.StackPointer())); ok {
				if index >= len(redacted) || tok.String() != env[index] {
					return nil, fmt.Errorf("rewrite the inspect answer: Config.Env/%d is not the environment Docker reported", index)
				}
				tok = jsontext.String(redacted[index])
			}
		}
		if err := enc.WriteToken(tok); err != nil {
			return nil, fmt.Errorf("rewrite the inspect answer: %w", err)
		}
	}
	return bytes.TrimSpace(out.Bytes()), nil
}

// envIndex tells whether a JSON pointer into data names an entry of the
// container's Config.Env, and which.
func envIndex(pointer string) (int, bool) {
	rest, ok := strings.CutPrefix(pointer, "/0/Config/Env/")
	if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || len(rest) > 6 {
		return 0, false
	}
	index := 0
	for _, digit := range rest {
		index = index*10 + int(digit-'0')
	}
	return index, true
}

// containerStatusFor reports, per Docker network the container is on, its
// IP addresses: IPv4 and global IPv6, one NetworkInfo per network, named
// after the network, in name order. Networks that gave the container no
// address (host, none) have no entry; nil when no network has one. The
// top-level NetworkSettings.IPAddress (gone from API 1.52) stands in only
// when Docker listed no network.
func containerStatusFor(container *docker.Container) *mesos.ContainerStatus {
	if container == nil || container.NetworkSettings == nil {
		return nil
	}
	settings := container.NetworkSettings
	networks := settings.Networks
	if len(networks) == 0 && (settings.IPAddress != "" || settings.GlobalIPv6Address != "") {
		name := ""
		if container.HostConfig != nil {
			name = container.HostConfig.NetworkMode
		}
		networks = map[string]docker.ContainerNetwork{name: {IPAddress: settings.IPAddress, GlobalIPv6Address: settings.GlobalIPv6Address}}
	}
	var infos []mesos.NetworkInfo
	for _, name := range slices.Sorted(maps.Keys(networks)) {
		network := networks[name]
		var info mesos.NetworkInfo
		if name != "" {
			info.Name = &name
		}
		if ip := network.IPAddress; ip != "" {
			info.IPAddresses = append(info.IPAddresses, mesos.NetworkInfo_IPAddress{Protocol: mesos.IPv4.Enum(), IPAddress: &ip})
		}
		if ip := network.GlobalIPv6Address; ip != "" {
			info.IPAddresses = append(info.IPAddresses, mesos.NetworkInfo_IPAddress{Protocol: mesos.IPv6.Enum(), IPAddress: &ip})
		}
		if len(info.IPAddresses) > 0 {
			infos = append(infos, info)
		}
	}
	if len(infos) == 0 {
		return nil
	}
	return &mesos.ContainerStatus{NetworkInfos: infos}
}
