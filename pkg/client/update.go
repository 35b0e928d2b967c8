package client

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// ModifyService reads the service ref names, lets mutate change a copy of
// its spec, and writes it back with the version it read, retrying a few
// times when a concurrent writer got there first. mutate may be called more
// than once; an error from it is returned as is.
func (c *Client) ModifyService(ctx context.Context, ref string, mutate func(*minkepb.ServiceSpec) error) (*minkepb.Service, error) {
	return c.retryStale(ctx, ref, func(svc *minkepb.Service) (*minkepb.UpdateServiceRequest, error) {
		spec := proto.Clone(svc.GetSpec()).(*minkepb.ServiceSpec)
		if err := mutate(spec); err != nil {
			return nil, err
		}
		return &minkepb.UpdateServiceRequest{ServiceId: svc.GetMeta().GetId(), ServiceVersion: svc.GetMeta().GetVersion(), Spec: spec}, nil
	})
}

// RollbackService returns the service ref names to its previous spec.
func (c *Client) RollbackService(ctx context.Context, ref string) (*minkepb.Service, error) {
	return c.retryStale(ctx, ref, func(svc *minkepb.Service) (*minkepb.UpdateServiceRequest, error) {
		return &minkepb.UpdateServiceRequest{ServiceId: svc.GetMeta().GetId(), ServiceVersion: svc.GetMeta().GetVersion(), Rollback: true}, nil
	})
}

func (c *Client) retryStale(ctx context.Context, ref string, build func(*minkepb.Service) (*minkepb.UpdateServiceRequest, error)) (*minkepb.Service, error) {
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
		req, err := build(svc)
		if err != nil {
			return nil, err
		}
		resp, err := c.ctl.UpdateService(ctx, req)
		if status.Code(err) == codes.FailedPrecondition && svc.GetMeta().GetVersion() != 0 && isStale(err) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, err
		}
		return resp.GetService(), nil
	}
	return nil, lastErr
}

// isStale tells a version conflict from other FailedPrecondition answers
// (such as a rollback without a previous spec).
func isStale(err error) bool {
	return status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), "changed since it was read")
}

// RebalanceService spreads the service's tasks evenly again.
func (c *Client) RebalanceService(ctx context.Context, ref string) (*minkepb.Service, error) {
	resp, err := c.ctl.RebalanceService(ctx, &minkepb.RebalanceServiceRequest{Service: ref})
	if err != nil {
		return nil, err
	}
	return resp.GetService(), nil
}

// SetTaskHistoryLimit sets the cluster's task history retention limit.
func (c *Client) SetTaskHistoryLimit(ctx context.Context, limit int64) (*minkepb.Cluster, error) {
	resp, err := c.ctl.UpdateClusterOrchestration(ctx, &minkepb.UpdateClusterOrchestrationRequest{
		Orchestration: &minkepb.OrchestrationConfig{TaskHistoryRetentionLimit: &limit}})
	if err != nil {
		return nil, err
	}
	return resp.GetCluster(), nil
}
