//go:build tools

// This file pins the libraries the executor is built from while the packages
// that use them are being written, so that parallel work shares one go.mod.
package main

import (
	_ "github.com/fsouza/go-dockerclient"
	_ "github.com/google/uuid"
	_ "github.com/hashicorp/vault/api"
	_ "github.com/mattn/go-shellwords"
	_ "github.com/mesos/mesos-go/api/v1/lib"
	_ "github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	_ "github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	_ "github.com/mesos/mesos-go/api/v1/lib/executor/config"
	_ "github.com/mesos/mesos-go/api/v1/lib/executor/events"
	_ "github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	_ "github.com/mesos/mesos-go/api/v1/lib/recordio"
	_ "github.com/mesos/mesos-go/api/v1/lib/resources"
	_ "github.com/mesos/mesos-go/api/v1/lib/time"
)
