package shim

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// encodeInitConfig is what the shim writes on the init's config pipe: the
// length of the JSON (4 bytes, little endian), c as JSON without the
// seccomp filter, then the filter's bytes. The filter, several KiB, would
// otherwise be base64 text through the JSON scanner in every init, on the
// path of every container start. Shim and init are the same binary, so the
// format needs no versioning.
func encodeInitConfig(c InitConfig) ([]byte, error) {
	filter := c.Sandbox.Seccomp
	c.Sandbox.Seccomp = nil
	js, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4, 4+len(js)+len(filter))
	binary.LittleEndian.PutUint32(b, uint32(len(js)))
	b = append(b, js...)
	return append(b, filter...), nil
}

// decodeInitConfig reverses encodeInitConfig.
func decodeInitConfig(b []byte) (InitConfig, error) {
	var c InitConfig
	if len(b) < 4 {
		return c, fmt.Errorf("init config of %d bytes: want at least the 4-byte length", len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return c, fmt.Errorf("init config: JSON length %d exceeds the %d bytes received", n, len(b)-4)
	}
	if err := json.Unmarshal(b[4:4+n], &c); err != nil {
		return c, fmt.Errorf("decoding init config (%d bytes): %w", n, err)
	}
	if rest := b[4+n:]; len(rest) > 0 {
		c.Sandbox.Seccomp = rest
	}
	return c, nil
}
