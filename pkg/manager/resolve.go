package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/controlapi"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/regclient"
)

// ResolveTimeout bounds the registry look-up of a service's image when the
// service is created or its image changed; a call with an earlier deadline
// (a call forwarded by another manager) bounds it more.
const ResolveTimeout = 10 * time.Second

// builtinLookupTimeout bounds asking the other managers' registries for an
// image this one lacks, before the name is taken to mean Docker Hub.
const builtinLookupTimeout = 2 * time.Second

// unreachableTTL is how long a registry found unreachable is not asked
// again: creates in a row (or an air-gapped cluster naming Docker Hub
// images) do not each wait for the same timeout.
const unreachableTTL = 30 * time.Second

// imagePinner turns an image tag into the digest it names now, so that a
// service's replicas all run the same bytes even if the tag moves later,
// as docker does for `docker service create`: "nginx:1.27" is stored as
// "nginx:1.27@sha256:…". The digest is of what the tag names: for a
// multi-arch image the index, from which each node picks its platform.
type imagePinner struct {
	// builtin reports whether the cluster's own registry holds image (a
	// name without a registry, pushed with `swarmctl image push`); those
	// are pinned to this cluster's registry by the orchestrator instead.
	builtin  func(ctx context.Context, image string) bool
	keychain authn.Keychain
	insecure map[string]bool // registries reached over plain HTTP
	timeout  time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	down map[string]time.Time // registry -> when it was found unreachable
}

func (p *imagePinner) recentlyDown(registry string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.down[registry]
	return ok && time.Since(t) < unreachableTTL
}

func (p *imagePinner) markDown(registry string, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !down {
		delete(p.down, registry)
		return
	}
	if p.down == nil {
		p.down = map[string]time.Time{}
	}
	p.down[registry] = time.Now()
}

// parse parses image, marking the registry insecure if it is listed.
func (p *imagePinner) parse(image string) (name.Reference, error) {
	ref, err := name.ParseReference(image)
	if err == nil && p.insecure[ref.Context().RegistryStr()] {
		ref, err = name.ParseReference(image, name.Insecure)
	}
	return ref, err
}

// pin returns image with the digest it resolves to appended. When the
// registry answers that the image is missing or access is refused, it
// returns an error wrapping regclient.ErrNotFound or ErrUnauthorized. When
// the registry cannot be reached, image is returned unchanged (with a
// warning): each worker then pulls it itself, and a worker that cannot
// either rejects the task saying why.
func (p *imagePinner) pin(ctx context.Context, image string) (string, error) {
	ref, err := p.parse(image)
	if err != nil {
		return "", fmt.Errorf("invalid image %q: %w", image, err)
	}
	if p.builtin != nil {
		bctx, cancel := context.WithTimeout(ctx, builtinLookupTimeout)
		found := p.builtin(bctx, image)
		cancel()
		if found {
			return image, nil
		}
	}
	registry := ref.Context().RegistryStr()
	if p.recentlyDown(registry) {
		return image, nil
	}
	timeout := p.timeout
	if dl, ok := ctx.Deadline(); ok {
		// Leave the caller time to store the service and answer.
		timeout = min(timeout, time.Until(dl)*3/4)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	digest, err := regclient.Resolve(rctx, ref, p.keychain)
	switch {
	case err == nil:
	case errors.Is(err, regclient.ErrUnreachable) && ctx.Err() == nil:
		p.markDown(registry, true)
		p.log.Warn("image registry unreachable: images of it are not pinned to digests for a while, each worker resolves them when it pulls",
			"image", image, "registry", registry, "retry_after", unreachableTTL, "err", err)
		return image, nil
	default:
		return "", err
	}
	p.markDown(registry, false)
	if _, ok := ref.(name.Digest); ok {
		return image, nil // checked to exist; already pinned
	}
	tag := ref.(name.Tag)
	if !strings.HasSuffix(image, ":"+tag.TagStr()) {
		image += ":" + tag.TagStr() // docker's form names the tag it resolved
	}
	return image + "@" + digest.String(), nil
}

// pinningControl is the Control API with the images of created and
// updated services pinned to digests before they are stored. Only the
// leader pins (a follower forwards the call as it came, and the leader pins
// it), so a manager cut off from the leader refuses a write as fast as
// before, without first asking a registry.
type pinningControl struct {
	*controlapi.Forwarder
	pinner   *imagePinner
	isLeader func() bool
	// currentImage returns the stored image of a service (by ID, name or
	// prefix), or "" if there is none.
	currentImage func(service string) string
}

var _ minkepb.ControlServer = (*pinningControl)(nil)

// Register adds the service to s.
func (c *pinningControl) Register(s *grpc.Server) { minkepb.RegisterControlServer(s, c) }

func (c *pinningControl) CreateService(ctx context.Context, r *minkepb.CreateServiceRequest) (*minkepb.CreateServiceResponse, error) {
	if c.isLeader() && r.GetSpec().GetTask().GetContainer().GetImage() != "" {
		spec, err := c.pinSpec(ctx, r.GetSpec())
		if err != nil {
			return nil, err
		}
		r = proto.Clone(r).(*minkepb.CreateServiceRequest)
		r.Spec = spec
	}
	return c.Forwarder.CreateService(ctx, r)
}

func (c *pinningControl) UpdateService(ctx context.Context, r *minkepb.UpdateServiceRequest) (*minkepb.UpdateServiceResponse, error) {
	image := r.GetSpec().GetTask().GetContainer().GetImage()
	// An unchanged image keeps its digest: updating replicas or env does
	// not move the service to whatever the tag names today. A rollback
	// restores the previous spec, digest included.
	if c.isLeader() && !r.GetRollback() && image != "" && image != c.currentImage(r.GetServiceId()) {
		spec, err := c.pinSpec(ctx, r.GetSpec())
		if err != nil {
			return nil, err
		}
		r = proto.Clone(r).(*minkepb.UpdateServiceRequest)
		r.Spec = spec
	}
	return c.Forwarder.UpdateService(ctx, r)
}

// pinSpec returns a copy of spec with its image pinned, or a gRPC error
// that says what is wrong with the image. A malformed name is left for the
// spec's validation to report.
func (c *pinningControl) pinSpec(ctx context.Context, spec *minkepb.ServiceSpec) (*minkepb.ServiceSpec, error) {
	image := spec.GetTask().GetContainer().GetImage()
	if _, err := name.ParseReference(image); err != nil {
		return spec, nil
	}
	pinned, err := c.pinner.pin(ctx, image)
	if err != nil {
		return nil, imageStatus(image, err)
	}
	spec = proto.Clone(spec).(*minkepb.ServiceSpec)
	spec.Task.Container.Image = pinned
	return spec, nil
}

// imageStatus maps a failed resolution to a gRPC error a user can act on.
func imageStatus(image string, err error) error {
	switch {
	case errors.Is(err, regclient.ErrNotFound):
		return status.Errorf(codes.NotFound, "image %q: %v: check the name and tag, or push the image ('swarmctl image push' for the cluster's registry)", image, err)
	case errors.Is(err, regclient.ErrUnauthorized):
		return status.Errorf(codes.PermissionDenied, "image %q: %v: give the managers and workers credentials for this registry (--registry-config)", image, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.FailedPrecondition, "image %q: %v", image, err)
}

// newPinningControl wraps the Control API of m.
func (m *Manager) newPinningControl(f *controlapi.Forwarder) (*pinningControl, error) {
	kc, err := regclient.Keychain(m.cfg.RegistryConfig)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	insecure := map[string]bool{}
	for _, r := range m.cfg.InsecureRegistries {
		insecure[r] = true
	}
	return &pinningControl{
		Forwarder: f,
		isLeader:  m.IsLeader,
		pinner: &imagePinner{
			builtin:  m.inBuiltinRegistry,
			keychain: kc,
			insecure: insecure,
			timeout:  ResolveTimeout,
			log:      m.log.With("component", "resolve"),
		},
		currentImage: func(service string) string {
			var image string
			_ = m.raft.View(func(tx raftstore.ReadTx) error {
				if svc, err := tx.FindService(service); err == nil {
					image = svc.GetSpec().GetTask().GetContainer().GetImage()
				}
				return nil
			})
			return image
		},
	}, nil
}
