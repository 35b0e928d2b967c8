// Command minke-shim is the small program a worker executes as each
// container's shim, init and exec helper (see runtime.Config.HelperBinary).
// It links only the runtime, so it starts several times faster than the
// worker binary, which would otherwise be re-executed for these roles.
// Install it next to the worker (and next to a manager run with --worker).
package main

import (
	"fmt"
	"os"

	"github.com/minke-io/minke/pkg/runtime"
)

func main() {
	runtime.MaybeRunInit() // does not return in the shim, init and exec roles
	fmt.Fprintf(os.Stderr, "minke-shim: started by a minke worker as %s, %s or %s; not meant to be run by hand\n",
		runtime.ShimArg, runtime.InitArg, runtime.ExecArg)
	os.Exit(2)
}
