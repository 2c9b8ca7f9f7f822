package cli

import (
	"context"
	"errors"

	"k8s.io/klog/v2"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// ErrLiveModeUnavailable is returned when no --snapshot is given: this build
// cannot collect from a cluster yet.
var ErrLiveModeUnavailable = errors.New("live mode is not available yet in this build; use --snapshot DIR (see docs/snapshot.md)")

// data returns what to analyse: the --snapshot directory when given, else
// what the live collector gathers from the cluster. This is the one place
// that chooses between the two.
func (o *SvcpathOptions) data(ctx context.Context) (*snapshot.Snapshot, error) {
	if o.SnapshotDir != "" {
		klog.V(2).InfoS("loading snapshot", "dir", o.SnapshotDir)
		return o.loadSnapshot(o.SnapshotDir)
	}
	return o.collectLive(ctx)
}

// collectLive is where the live collector plugs in. It will build a client
// from o.configFlags (ToRESTConfig, with o.configFlags.ToRawKubeConfigLoader
// for the context), read the Service, its EndpointSlices, Pods and Nodes,
// collect node data on o.Nodes (or on the endpoints' nodes and one client
// node when empty), and return them as a *snapshot.Snapshot, so that the
// analysis and rendering below stay the same in both modes. Until then it
// refuses with a message that tells the user what works today.
func (o *SvcpathOptions) collectLive(ctx context.Context) (*snapshot.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, ErrLiveModeUnavailable
}
