package sidecartest

import (
	"encoding/json"
	"fmt"
	"time"
)

// Service statuses as Sidecar numbers them (service/service.go, iota order).
const (
	StatusAlive     = 0
	StatusTombstone = 1
	StatusUnhealthy = 2
	StatusUnknown   = 3
	StatusDraining  = 4
)

// The struct types below mirror Sidecar's state.json schema. Field order is
// the order Sidecar's ffjson code writes, so a marshalled State reads like a
// real answer. Maps marshal with sorted keys, which keeps documents
// reproducible.

// State is the whole state.json document.
type State struct {
	Servers     map[string]*Host
	LastChanged time.Time
	ClusterName string
	Hostname    string
}

// Host is one entry of State.Servers.
type Host struct {
	Name        string
	Services    map[string]*Service
	LastUpdated time.Time
	LastChanged time.Time
}

// Service is one service record.
type Service struct {
	ID        string
	Name      string
	Image     string
	Created   time.Time
	Hostname  string
	Ports     []Port
	Updated   time.Time
	ProxyMode string
	Status    int
}

// Port is one published port of a Service.
type Port struct {
	Type        string
	Port        int
	ServicePort int
	IP          string
}

// GenerateState builds a realistic document of serviceCount services spread
// evenly over hostCount hosts (at least one), with generated 12-hex IDs,
// names, images and one published TCP port each, all ALIVE; service i has ID
// GeneratedID(i) and lives on host i % hostCount. The answering
// Sidecar's Hostname is the first host, "host-0000". Benchmarks and tests use
// it to produce cluster-sized answers.
func GenerateState(hostCount, serviceCount int) State {
	if hostCount < 1 {
		hostCount = 1
	}
	base := time.Date(2026, 11, 23, 7, 0, 1, 0, time.UTC)
	state := State{
		Servers:     make(map[string]*Host, hostCount),
		LastChanged: base.Add(11*time.Minute + 580*time.Millisecond),
		ClusterName: "bench",
		Hostname:    fmt.Sprintf("host-%04d", 0),
	}
	hosts := make([]*Host, hostCount)
	for i := range hosts {
		name := fmt.Sprintf("host-%04d", i)
		hosts[i] = &Host{
			Name:        name,
			Services:    make(map[string]*Service),
			LastUpdated: base.Add(12*time.Minute + 519301*time.Microsecond),
			LastChanged: base.Add(11 * time.Minute),
		}
		state.Servers[name] = hosts[i]
	}
	for i := 0; i < serviceCount; i++ {
		host := hosts[i%hostCount]
		id := GeneratedID(i)
		host.Services[id] = &Service{
			ID:        id,
			Name:      fmt.Sprintf("service-%03d", i%300),
			Image:     fmt.Sprintf("registry.local:5000/team/service-%03d:1.%d.%d", i%300, i%7, i%13),
			Created:   base.Add(-time.Duration(i) * time.Second),
			Hostname:  host.Name,
			Ports:     []Port{{Type: "tcp", Port: 31000 + i%1000, ServicePort: 10000 + i%300, IP: "10.1.2.3"}},
			Updated:   base.Add(12*time.Minute + time.Duration(i)*time.Microsecond),
			ProxyMode: "http",
			Status:    StatusAlive,
		}
	}
	return state
}

// GeneratedID is the service ID GenerateState gives its i-th service.
func GeneratedID(i int) string {
	return fmt.Sprintf("%012x", uint64(i)*0x9e3779b97f4a7c15>>16)
}

// Marshal renders the document compactly, as Sidecar serves it.
func (s State) Marshal() []byte {
	body, err := json.Marshal(s)
	if err != nil {
		// Only channels, funcs and cyclic values fail to marshal; the
		// schema has none of them.
		panic(fmt.Sprintf("sidecartest: marshal state: %v", err))
	}
	return body
}
