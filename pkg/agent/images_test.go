package agent

import (
	"errors"
	"fmt"
	"testing"

	"github.com/minke-io/minke/pkg/regclient"
	"github.com/minke-io/minke/pkg/runtime"
)

func TestPreparingFailed(t *testing.T) {
	pull := func(cause error) error { return fmt.Errorf("%w %q: %w: details", runtime.ErrPull, "r/x:1", cause) }
	tests := []struct {
		err  error
		want string
	}{
		{pull(regclient.ErrNotFound), "image not found"},
		{pull(regclient.ErrUnauthorized), "registry refused access to the image"},
		{pull(regclient.ErrUnreachable), "image registry unreachable"},
		{pull(regclient.ErrCorrupt), "image corrupt (digest mismatch)"},
		{pull(runtime.ErrUnsafePath), "image refused: unsafe layer"},
		{pull(runtime.ErrDeviceNode), "image refused: unsafe layer"},
		{pull(runtime.ErrOversize), "image refused: unsafe layer"},
		{pull(errors.New("something else")), "pulling image failed"},
		{fmt.Errorf("%w: user", runtime.ErrInvalidSpec), "preparing failed"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := preparingFailed(tc.err); got != tc.want {
				t.Fatalf("preparingFailed(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
