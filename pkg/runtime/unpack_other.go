//go:build !linux

package runtime

import "archive/tar"

func mkWhiteout(string) error               { return ErrUnsupported }
func setOpaque(string) error                { return ErrUnsupported }
func mknod(string, *tar.Header) error       { return ErrUnsupported }
func setXattr(string, string, string) error { return ErrUnsupported }
func setTimes(string, *tar.Header) error    { return nil }
