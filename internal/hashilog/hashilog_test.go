package hashilog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWriterKeepsLevels(t *testing.T) {
	var buf bytes.Buffer
	w := Writer{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), Drop: "memberlist: "}
	for _, line := range []string{
		"[DEBUG] memberlist: probing\n",
		"[ERR] memberlist: failed\n",
		"2026-11-27T07:02:24.229Z [WARN]  raft: heartbeat timeout reached\n",
		"2026-11-27T07:02:24.229Z [ERROR] raft: peer said [WARN] in its answer\n",
		"no tag\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg=probing`,
		`level=ERROR msg=failed`,
		`level=WARN msg="raft: heartbeat timeout reached"`,
		`level=ERROR msg="raft: peer said [WARN] in its answer"`, // the first tag counts
		`level=INFO msg="no tag"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
}
