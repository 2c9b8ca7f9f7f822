package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	old := [...]string{Version, Commit, Date, AgentImage}
	defer func() { Version, Commit, Date, AgentImage = old[0], old[1], old[2], old[3] }()
	Version, Commit, Date, AgentImage = "v1.2.3", "abc1234", "2025-01-02T03:04:05Z", "example.com/agent:v1.2.3"

	got := Get()
	want := Info{Version: "v1.2.3", Commit: "abc1234", Date: "2025-01-02T03:04:05Z", AgentImage: "example.com/agent:v1.2.3",
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if got != want {
		t.Errorf("Get() = %+v, want %+v", got, want)
	}
	if s := got.String(); !strings.HasPrefix(s, "kubectl-svcpath v1.2.3 (commit abc1234, built 2025-01-02T03:04:05Z") {
		t.Errorf("String() = %q", s)
	}
}

func TestDefaults(t *testing.T) {
	if Version != "dev" || Commit != "none" || Date != "unknown" || !strings.HasSuffix(AgentImage, ":dev") {
		t.Errorf("unstamped defaults changed: %q %q %q %q", Version, Commit, Date, AgentImage)
	}
}
