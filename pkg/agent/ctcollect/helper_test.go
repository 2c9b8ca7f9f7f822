//go:build linux

package ctcollect

import (
	"os"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

func TestMain(m *testing.M) {
	// The kernel tests re-run this binary in their namespaces as echo
	// servers and clients (netnstest.StartServer, RunClient).
	netnstest.MaybeRunHelper(nil)
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

func startServer(t *testing.T, ns *netnstest.NS, spec string) {
	t.Helper()
	netnstest.StartServer(t, ns.Name, spec)
}

func runClient(t *testing.T, ns *netnstest.NS, mode, args string) {
	t.Helper()
	netnstest.RunClient(t, ns.Name, mode, args)
}
