package raftstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Raft's warnings must reach an operator who runs at --log-level warn: the
// writer keeps each hclog line's level.
func TestSlogWriterKeepsHclogLevels(t *testing.T) {
	var buf bytes.Buffer
	w := slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, line := range []string{
		"2026-11-27T07:02:24.229Z [WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:1\n",
		"2026-11-27T07:02:24.229Z [ERROR] raft: failed to appendEntries to: peer=m2 error=timeout\n",
		"2026-11-27T07:02:24.229Z [INFO]  raft: entering follower state\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:1"`,
		`level=ERROR msg="raft: failed to appendEntries to: peer=m2 error=timeout"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "entering follower state") {
		t.Errorf("an INFO line passed a WARN handler:\n%s", out)
	}
}
