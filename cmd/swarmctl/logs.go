package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func newServiceLogsCmd(a *app) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] SERVICE",
		Short: "Print the logs of a service's tasks",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
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
				err = api.ServiceLogs(ctx, svc.GetMeta().GetId(), follow, p.write)
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
	return cmd
}

// logPrinter prefixes every line of a service's log stream with the task it
// came from, docker style: "web.1.0123456789ab@node1    | line". A message
// may hold several lines or part of one; partial lines are held per task
// until their newline arrives or flush is called.
type logPrinter struct {
	w         io.Writer
	service   string
	hostnames map[string]string
	pending   map[string]*pendingLine
	order     []string // task IDs with pending data, first seen first
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
