package route

import (
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

// Thin names for the shared kernel-test support (pkg/internal/netnstest).
type testNS = netnstest.NS

func requireKernel(t *testing.T, tools ...string)   { netnstest.RequireKernel(t, tools...) }
func newTestNS(t *testing.T, prefix string) *testNS { return netnstest.New(t, prefix) }
func randSuffix(t *testing.T) string                { return netnstest.RandSuffix(t) }
func runCmd(name string, args ...string) (string, error) {
	return netnstest.Run(name, args...)
}
