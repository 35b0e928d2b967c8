package runtime

import "errors"

// Sentinel errors. Callers test them with errors.Is; the returned errors
// wrap them with the container id, image reference or path involved.
var (
	// ErrPull means an image could not be pulled; the error names the
	// reference and the cause.
	ErrPull = errors.New("runtime: pulling image")
	// ErrUnsafePath means a layer entry would be written outside the layer
	// directory (a ".." escape, or a parent that is a symlink).
	ErrUnsafePath = errors.New("runtime: unsafe path in layer")
	// ErrStart means the container's process could not be started; the
	// message carries the reason reported by the container init, such as
	// `executable "foo" not found in $PATH`.
	ErrStart = errors.New("starting container")
	// ErrDeviceNode means a layer holds a character or block device node.
	// Images may not ship devices: the runtime provides /dev, and a node
	// such as the host's disk would otherwise be usable by the container.
	ErrDeviceNode = errors.New("runtime: device node in layer")
	// ErrContainerExists means Create was called with an id whose directory
	// already exists under the runtime root.
	ErrContainerExists = errors.New("runtime: container already exists")
	// ErrInvalidState means a lifecycle method was called in the wrong state
	// (Start twice, Wait before Start, Start after Remove).
	ErrInvalidState = errors.New("runtime: invalid container state")
	// ErrInvalidSpec means a ContainerSpec field is unusable; the error
	// names the field.
	ErrInvalidSpec = errors.New("runtime: invalid container spec")
	// ErrNoCgroups means no usable cgroup hierarchy (v1 or v2) was found.
	ErrNoCgroups = errors.New("runtime: no usable cgroup hierarchy")
	// ErrUnsupported means the runtime is used on an OS other than Linux.
	ErrUnsupported = errors.New("runtime: unsupported on this OS")
)
