package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spf13/cobra"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func newServiceLogsCmd(a *app) *cobra.Command {
	var (
		follow, timestamps bool
		tail, since        string
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--since T] [-t] SERVICE",
		Short: "Print the logs of a service's tasks",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req := &minkepb.ServiceLogsRequest{Follow: follow}
			if tail != "all" {
				n, err := strconv.ParseInt(tail, 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("invalid --tail %q: want a number of lines or \"all\"", tail)
				}
				req.Tail = &n
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				req.Since = timestamppb.New(t)
			}
			return a.withAPI(ctx, func(api controlAPI) error {
				svc, err := api.ResolveService(ctx, args[0])
				if err != nil {
					return err
				}
				nodes, err := api.ListNodes(ctx)
				if err != nil {
					return err
				}
				p := newLogPrinter(a.stdout, svc.GetSpec().GetName(), hostnames(nodes))
				p.timestamps = timestamps
				req.Service = svc.GetMeta().GetId()
				err = api.ServiceLogsWith(ctx, req, p.write)
				if ferr := p.flush(); err == nil {
					err = ferr
				}
				if follow && ctx.Err() != nil {
					return nil // interrupted by the user: the normal end of -f
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new output")
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "number of lines to show from the end of each task's log, or \"all\"")
	cmd.Flags().StringVar(&since, "since", "", "show lines since a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes)")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "show when each line was written")
	return cmd
}

// parseSince reads --since as docker does: an RFC 3339 time (with or
// without fraction and zone: a time without zone is UTC), a date, Unix
// seconds, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("invalid --since %q: a duration must not be negative", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if sec, err := strconv.ParseFloat(s, 64); err == nil && sec >= 0 {
		whole := int64(sec)
		return time.Unix(whole, int64((sec-float64(whole))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid --since %q: want a time (2013-01-02T13:23:37Z, 2013-01-02), Unix seconds, or a duration (42m)", s)
}

// logPrinter prefixes every line of a service's log stream with the task it
// came from, docker style: "web.1.0123456789ab@node1    | line". A message
// may hold several lines or part of one; partial lines are held per task
// until their newline arrives or flush is called.
type logPrinter struct {
	w          io.Writer
	timestamps bool // start each line with the time it was written
	service    string
	hostnames  map[string]string
	pending    map[string]*pendingLine
	order      []string // task IDs with pending data, first seen first
}

type pendingLine struct {
	prefix string
	data   []byte
}

func newLogPrinter(w io.Writer, service string, hostnames map[string]string) *logPrinter {
	return &logPrinter{w: w, service: service, hostnames: hostnames, pending: make(map[string]*pendingLine)}
}

func (p *logPrinter) prefix(m *minkepb.LogMessage) string {
	node := p.hostnames[m.GetNodeId()]
	if node == "" {
		node = shortID(m.GetNodeId())
	}
	return fmt.Sprintf("%s.%d.%s@%s    | ", p.service, m.GetSlot(), shortID(m.GetTaskId()), node)
}

// write prints the complete lines of m and keeps the rest.
func (p *logPrinter) write(m *minkepb.LogMessage) error {
	pl := p.pending[m.GetTaskId()]
	if pl == nil {
		pl = &pendingLine{prefix: p.prefix(m)}
		p.pending[m.GetTaskId()] = pl
		p.order = append(p.order, m.GetTaskId())
	}
	if p.timestamps && len(pl.data) == 0 && m.GetTimestamp() != nil {
		pl.data = append(pl.data, m.GetTimestamp().AsTime().UTC().Format(time.RFC3339Nano)+" "...)
	}
	pl.data = append(pl.data, m.GetData()...)
	var out bytes.Buffer
	for {
		i := bytes.IndexByte(pl.data, '\n')
		if i < 0 {
			break
		}
		out.WriteString(pl.prefix)
		out.Write(pl.data[:i+1])
		pl.data = pl.data[i+1:]
	}
	if len(pl.data) == 0 {
		pl.data = nil // let the consumed buffer go
	}
	_, err := p.w.Write(out.Bytes())
	return err
}

// flush prints held partial lines, each ended with a newline.
func (p *logPrinter) flush() error {
	var out bytes.Buffer
	for _, id := range p.order {
		pl := p.pending[id]
		if len(pl.data) > 0 {
			out.WriteString(pl.prefix)
			out.Write(pl.data)
			out.WriteByte('\n')
			pl.data = nil
		}
	}
	_, err := p.w.Write(out.Bytes())
	return err
}
