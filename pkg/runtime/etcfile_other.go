//go:build !linux

package runtime

// WriteEtcFile needs Linux.
func (c *Container) WriteEtcFile(string, []byte) error { return ErrUnsupported }
