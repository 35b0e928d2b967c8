package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// scaleAttempts bounds ScaleService's retries when another writer changes
// the service between its read and its update.
const scaleAttempts = 5

// CreateOption changes how CreateService asks.
type CreateOption func(*minkepb.CreateServiceRequest)

// NoResolveImage stores the image reference as given: the leader does not
// ask the registry to pin its tag to a digest (docker's --no-resolve-image).
func NoResolveImage() CreateOption {
	return func(r *minkepb.CreateServiceRequest) { r.NoResolveImage = true }
}

// CreateService creates a service from spec and returns it as stored.
func (c *Client) CreateService(ctx context.Context, spec *minkepb.ServiceSpec, opts ...CreateOption) (*minkepb.Service, error) {
	req := &minkepb.CreateServiceRequest{Spec: spec}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.ctl.CreateService(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetService(), nil
}

// ResolveService returns the service that ref names: an ID, a unique ID
// prefix, or a name. The manager does the resolving, so every client agrees.
func (c *Client) ResolveService(ctx context.Context, ref string) (*minkepb.Service, error) {
	resp, err := c.ctl.GetService(ctx, &minkepb.GetServiceRequest{Service: ref})
	if err != nil {
		return nil, err
	}
	return resp.GetService(), nil
}

// ListServices returns all services and their replica counts keyed by
// service ID.
func (c *Client) ListServices(ctx context.Context) ([]*minkepb.Service, map[string]*minkepb.ReplicaCounts, error) {
	resp, err := c.ctl.ListServices(ctx, &minkepb.ListServicesRequest{})
	if err != nil {
		return nil, nil, err
	}
	return resp.GetServices(), resp.GetCounts(), nil
}

// UpdateService replaces the spec of service id. version is the
// Meta.version the caller read; a stale one fails with FailedPrecondition.
func (c *Client) UpdateService(ctx context.Context, id string, version uint64, spec *minkepb.ServiceSpec) (*minkepb.Service, error) {
	resp, err := c.ctl.UpdateService(ctx, &minkepb.UpdateServiceRequest{
		ServiceId: id, ServiceVersion: version, Spec: spec,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetService(), nil
}

// RemoveService removes the service ref names (ID, ID prefix or name).
func (c *Client) RemoveService(ctx context.Context, ref string) error {
	_, err := c.ctl.RemoveService(ctx, &minkepb.RemoveServiceRequest{Service: ref})
	return err
}

// ListTasks returns the tasks of the service ref names (ID, ID prefix or
// name), or all tasks when ref is empty.
func (c *Client) ListTasks(ctx context.Context, ref string) ([]*minkepb.Task, error) {
	resp, err := c.ctl.ListTasks(ctx, &minkepb.ListTasksRequest{Service: ref})
	if err != nil {
		return nil, err
	}
	return resp.GetTasks(), nil
}

// ScaleService sets the replica count of the service ref names and returns
// the updated service. It reads the service and updates it with the version
// it read, retrying a few times if a concurrent writer got there first; any
// other error is returned as is.
func (c *Client) ScaleService(ctx context.Context, ref string, replicas uint64) (*minkepb.Service, error) {
	var lastErr error
	for attempt := range scaleAttempts {
		if attempt > 0 {
			if err := sleepCtx(ctx, time.Duration(attempt)*50*time.Millisecond); err != nil {
				return nil, err
			}
		}
		svc, err := c.ResolveService(ctx, ref)
		if err != nil {
			return nil, err
		}
		spec := proto.Clone(svc.GetSpec()).(*minkepb.ServiceSpec)
		if spec == nil {
			spec = &minkepb.ServiceSpec{}
		}
		switch spec.GetMode().(type) {
		case nil, *minkepb.ServiceSpec_Replicated:
			spec.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: replicas}}
		default:
			return nil, status.Errorf(codes.InvalidArgument, "service %s is not a replicated service: only replicated services can be scaled", svc.GetSpec().GetName())
		}
		updated, err := c.UpdateService(ctx, svc.GetMeta().GetId(), svc.GetMeta().GetVersion(), spec)
		if status.Code(err) == codes.FailedPrecondition {
			lastErr = err
			continue
		}
		return updated, err
	}
	return nil, lastErr
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// desiredReplicas is the replica count a service's spec asks for.
func desiredReplicas(svc *minkepb.Service) uint64 {
	return svc.GetSpec().GetReplicated().GetReplicas()
}

// TaskName formats a task's name as docker does: SERVICE.SLOT.
func TaskName(t *minkepb.Task) string {
	return fmt.Sprintf("%s.%d", t.GetServiceName(), t.GetSlot())
}
