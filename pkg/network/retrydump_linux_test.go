package network

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

// A dump the kernel flags interrupted (the table changed meanwhile) is
// read again, a bounded number of times; other errors are not retried.
func TestRetryDump(t *testing.T) {
	calls := 0
	got, err := retryDump(func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{-1}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(got) != 2 || calls != 3 {
		t.Fatalf("got %v, %v after %d calls; want [1 2], nil after 3", got, err, calls)
	}

	calls = 0
	_, err = retryDump(func() ([]int, error) { calls++; return nil, netlink.ErrDumpInterrupted })
	if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != 5 {
		t.Fatalf("always interrupted: %v after %d calls; want ErrDumpInterrupted after 5", err, calls)
	}

	calls = 0
	boom := errors.New("boom")
	if _, err = retryDump(func() ([]int, error) { calls++; return nil, boom }); err != boom || calls != 1 {
		t.Fatalf("other error: %v after %d calls; want boom after 1", err, calls)
	}
}
