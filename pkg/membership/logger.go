package membership

import (
	"log"
	"log/slog"

	"github.com/minke-io/minke/internal/hashilog"
)

// newStdLogger adapts memberlist's *log.Logger output ("[LEVEL]
// memberlist: message", one line per call) to slog at each line's level,
// without the "memberlist: " prefix, which the component attribute
// already says.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(hashilog.Writer{Logger: l, Drop: "memberlist: "}, "", 0)
}
