package cli

import (
	"flag"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// addKlogFlags adds klog's flags to fs, hidden except -v (as kubectl-tree
// and krew do): client-go logs through klog, and -v 6 shows its requests.
func addKlogFlags(fs *pflag.FlagSet) {
	gofs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(gofs)
	gofs.VisitAll(func(f *flag.Flag) {
		pf := pflag.PFlagFromGoFlag(f)
		if f.Name != "v" {
			pf.Hidden = true
		}
		fs.AddFlag(pf)
	})
}
