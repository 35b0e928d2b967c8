// Package hashilog turns the log lines of HashiCorp libraries into slog
// records at the lines' own levels. memberlist writes "[LEVEL] memberlist:
// message" through a *log.Logger; Raft's hclog writes "TIME [LEVEL]  raft:
// message". Either way the first level tag picks the level, and warnings
// (a suspect node, an election, a leader stepping down) show at
// --log-level warn.
package hashilog

import (
	"context"
	"log/slog"
	"strings"
)

// levels are the tags the libraries write, by slog level.
var levels = []struct {
	tag   string
	level slog.Level
}{
	{"[TRACE]", slog.LevelDebug},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// Writer logs each line written to it (one per Write) to Logger, at the
// level of its first tag (Info without one), with the text after the tag
// less Drop (such as "memberlist: ", which the component attribute
// already says).
type Writer struct {
	Logger *slog.Logger
	Drop   string
}

func (w Writer) Write(p []byte) (int, error) {
	line, level := strings.TrimSpace(string(p)), slog.LevelInfo
	at, size := -1, 0
	for _, l := range levels {
		if i := strings.Index(line, l.tag); i >= 0 && (at < 0 || i < at) {
			at, size, level = i, len(l.tag), l.level
		}
	}
	if at >= 0 {
		line = strings.TrimSpace(line[at+size:])
	}
	w.Logger.Log(context.Background(), level, strings.TrimPrefix(line, w.Drop))
	return len(p), nil
}
