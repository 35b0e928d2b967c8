// Command minke-shim is the small program a worker executes as each
// container's shim, init and exec helper (see runtime.Config.HelperBinary).
// It links only internal/shim (the standard library, x/sys/unix and
// filepath-securejoin), not the runtime with its image puller and cgroup
// and seccomp compilers: its process start, paid by every container
// start, is then little more than the Go runtime's own. Install it next to
// the worker (and next to a manager run with --worker).
package main

import (
	"fmt"
	"os"

	"github.com/minke-io/minke/internal/shim"
)

func main() {
	shim.Main() // does not return in the shim, init and exec roles
	fmt.Fprintf(os.Stderr, "minke-shim: started by a minke worker as %s, %s or %s; not meant to be run by hand\n",
		shim.ShimArg, shim.InitArg, shim.ExecArg)
	os.Exit(2)
}
