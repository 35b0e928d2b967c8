//go:build !linux

package runtime

func seccompFilter(capMask) ([]byte, error) { return nil, ErrUnsupported }
