package shim

import (
	"errors"
	"io"
	"os"
	goruntime "runtime"
)

// Main runs the shim, init or exec helper and never returns when this
// process was started as one (os.Args[0] is ShimArg, InitArg or ExecArg);
// otherwise it returns at once. Call it first thing in main() of every
// binary that starts containers (pkg/runtime.MaybeRunInit does).
func Main() {
	if len(os.Args) == 0 {
		return
	}
	switch os.Args[0] {
	case ShimArg:
		runShim()
	case ExecArg:
		runExec()
	case InitArg:
		goruntime.LockOSThread()
		errPipe := os.NewFile(initErrorFD, "init-error")
		err := runInit()
		// runInit returns only on failure; the shim reads this as the
		// start's error.
		_, _ = io.WriteString(errPipe, err.Error())
		code := 1
		var ee *execError
		if errors.As(err, &ee) {
			code = ee.code
		}
		os.Exit(code)
	}
}
