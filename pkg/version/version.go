// Package version holds the build identity of kubectl-svcpath, stamped at
// link time by the Makefile and goreleaser:
//
//	go build -ldflags "-X github.com/svcpath/kubectl-svcpath/pkg/version.Version=v0.1.0 \
//	  -X github.com/svcpath/kubectl-svcpath/pkg/version.Commit=abc1234 \
//	  -X github.com/svcpath/kubectl-svcpath/pkg/version.Date=2025-01-01T00:00:00Z"
//
// Only string variables can be set with -X, so these are vars, not consts.
package version

import (
	"fmt"
	"runtime"
)

// Version is the release version (a git tag such as v0.1.0, or the output of
// git describe); "dev" for an unstamped build.
var Version = "dev"

// Commit is the git commit the binary was built from; "none" when unknown.
var Commit = "none"

// Date is the build time, RFC 3339 in UTC; "unknown" when not stamped.
var Date = "unknown"

// AgentImage is the node-agent image the live collector runs on each node by
// default. Release builds stamp it with the image of their own version, so a
// plugin and its agent always match; a flag may override it.
var AgentImage = "ghcr.io/svcpath/svcpath-agent:dev"

// Info is the build identity as printed by `kubectl svcpath version`.
type Info struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	Date       string `json:"date"`
	AgentImage string `json:"agentImage"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

// Get returns the build identity of the running binary.
func Get() Info {
	return Info{
		Version:    Version,
		Commit:     Commit,
		Date:       Date,
		AgentImage: AgentImage,
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// String is the one-line human form of Info.
func (i Info) String() string {
	return fmt.Sprintf("kubectl-svcpath %s (commit %s, built %s, %s, %s)",
		i.Version, i.Commit, i.Date, i.GoVersion, i.Platform)
}
