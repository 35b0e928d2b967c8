package runtime

import "github.com/minke-io/minke/internal/shim"

// MaybeRunInit runs the shim, container init or exec helper and never
// returns when this process was started as one (os.Args[0] is ShimArg,
// InitArg or ExecArg); otherwise it returns at once. Call it first thing
// in main() of every binary that starts containers, and in TestMain of
// tests that do: without the helper binary next to it (see
// Config.HelperBinary) a runtime re-executes its own binary in these roles.
func MaybeRunInit() { shim.Main() }
