package client

import (
	"context"
	"errors"
	"io"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// ServiceLogsWith is ServiceLogs with every option of the request (tail,
// since); req.Service names the service (ID, ID prefix or name).
func (c *Client) ServiceLogsWith(ctx context.Context, req *minkepb.ServiceLogsRequest, fn func(*minkepb.LogMessage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.ServiceLogs(ctx, req)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return err
		}
		for _, m := range resp.GetMessages() {
			if err := fn(m); err != nil {
				return err
			}
		}
	}
}
