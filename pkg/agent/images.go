package agent

import (
	"errors"

	"github.com/minke-io/minke/pkg/regclient"
	"github.com/minke-io/minke/pkg/runtime"
)

// ImageConfig is the worker's image store configuration (worker flags
// --registry-config, --image-gc, --max-layer-file-size).
type ImageConfig struct {
	// RegistryConfig is a docker config.json, or a directory holding one,
	// with registry credentials; "" uses $DOCKER_CONFIG or
	// $HOME/.docker/config.json.
	RegistryConfig string
	// InsecureRegistries (host:port) are reached over plain HTTP.
	// Loopback and private (RFC 1918) addresses always are.
	InsecureRegistries []string
	// MaxLayerFileSize caps the size of a file in a layer; 0 is the
	// runtime's default.
	MaxLayerFileSize int64
	// GC says when unused images are removed.
	GC runtime.ImageGCPolicy
}

// preparingFailed is the status message of a task whose container could
// not be prepared: it names the cause when the error shows one, so that
// `service ps` says why at a glance (the error has the details).
func preparingFailed(err error) string {
	switch {
	case errors.Is(err, regclient.ErrNotFound):
		return "image not found"
	case errors.Is(err, regclient.ErrUnauthorized):
		return "registry refused access to the image"
	case errors.Is(err, regclient.ErrUnreachable):
		return "image registry unreachable"
	case errors.Is(err, regclient.ErrCorrupt):
		return "image corrupt (digest mismatch)"
	case errors.Is(err, runtime.ErrUnsafePath), errors.Is(err, runtime.ErrDeviceNode), errors.Is(err, runtime.ErrOversize):
		return "image refused: unsafe layer"
	case errors.Is(err, runtime.ErrPull):
		return "pulling image failed"
	}
	return "preparing failed"
}
