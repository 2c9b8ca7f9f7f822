package agent

import (
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// The agent spells the node file names itself (it does not import
// pkg/snapshot); they must be the snapshot layout's.
func TestFileNamesMatchSnapshot(t *testing.T) {
	known := map[string]bool{}
	for _, n := range snapshot.FileNames() {
		known[n] = true
	}
	for _, n := range []string{fileIPTablesSave, fileIP6TablesSave, fileIPRoute, fileIPRule, fileIPLink,
		fileIPAddr, fileConntrack, fileSysctl, fileNFTRuleset, filePodInterfaces} {
		if !known[n] {
			t.Errorf("agent file %q is not a snapshot node file (%v)", n, snapshot.FileNames())
		}
	}
}
