package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Output formats accepted by --format.
const (
	formatTable = "table"
	formatJSON  = "json"
)

func checkFormat(f string) error {
	switch f {
	case "", formatTable, formatJSON:
		return nil
	}
	return fmt.Errorf("invalid --format %q: want table or json", f)
}

// writeJSONArray prints msgs as one indented JSON array of protojson
// objects (field names in lowerCamelCase, enums by name).
func writeJSONArray[M proto.Message](w io.Writer, msgs []M) error {
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	// Re-indenting through encoding/json also pins protojson's deliberately
	// unstable whitespace.
	out, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// newTable returns a tabwriter aligned like docker's tables.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// title renders an enum name as a word: RUNNING → Running, ON_FAILURE →
// On-failure.
func title(enumName string) string {
	s := strings.ReplaceAll(strings.ToLower(enumName), "_", "-")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeServices prints `service ls`, sorted by name.
func writeServices(w io.Writer, services []*minkepb.Service, counts map[string]*minkepb.ReplicaCounts) error {
	services = append([]*minkepb.Service(nil), services...)
	sort.SliceStable(services, func(i, j int) bool {
		return services[i].GetSpec().GetName() < services[j].GetSpec().GetName()
	})
	tw := newTable(w)
	// The UPDATE column appears once any service has been updated.
	updates := false
	for _, s := range services {
		updates = updates || s.GetUpdateStatus() != nil
	}
	header := "ID\tNAME\tMODE\tREPLICAS\tIMAGE"
	if updates {
		header += "\tUPDATE"
	}
	fmt.Fprintln(tw, header)
	for _, s := range services {
		id := s.GetMeta().GetId()
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", shortID(id), s.GetSpec().GetName(),
			serviceMode(s.GetSpec()), replicasColumn(s, counts[id]), s.GetSpec().GetTask().GetContainer().GetImage())
		if updates {
			line += "\t" + updateStateName(s.GetUpdateStatus().GetState())
			if s.GetUpdateStatus() == nil {
				line = strings.TrimSuffix(line, "unknown")
			}
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func serviceMode(spec *minkepb.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *minkepb.ServiceSpec_Replicated:
		return "replicated"
	case *minkepb.ServiceSpec_Global:
		return "global"
	case *minkepb.ServiceSpec_ReplicatedJob:
		return "replicated-job"
	case *minkepb.ServiceSpec_GlobalJob:
		return "global-job"
	default:
		return "unknown"
	}
}

// writeTasks prints `service ps`: tasks by service and slot, newest first
// within a slot, older ones marked as history with "\_" as docker does.
// hostnames maps node IDs to hostnames; now dates the CURRENT STATE column.
func writeTasks(w io.Writer, tasks []*minkepb.Task, hostnames map[string]string, now time.Time) error {
	tasks = append([]*minkepb.Task(nil), tasks...)
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if a.GetServiceName() != b.GetServiceName() {
			return a.GetServiceName() < b.GetServiceName()
		}
		if a.GetSlot() != b.GetSlot() {
			return a.GetSlot() < b.GetSlot()
		}
		return a.GetMeta().GetCreatedAt().AsTime().After(b.GetMeta().GetCreatedAt().AsTime())
	})
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tIMAGE\tNODE\tDESIRED STATE\tCURRENT STATE\tERROR")
	for i, t := range tasks {
		name := fmt.Sprintf("%s.%d", t.GetServiceName(), t.GetSlot())
		if i > 0 && tasks[i-1].GetServiceName() == t.GetServiceName() && tasks[i-1].GetSlot() == t.GetSlot() {
			name = ` \_ ` + name
		}
		image := t.GetSpec().GetContainer().GetImage()
		if image == "" {
			image = t.GetImage()
		}
		node := hostnames[t.GetNodeId()]
		if node == "" {
			node = shortID(t.GetNodeId())
		}
		errText := t.GetStatus().GetErr()
		if errText != "" {
			errText = fmt.Sprintf("%q", errText)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(t.GetMeta().GetId()), name, image, node,
			title(t.GetDesiredState().String()), currentState(t.GetStatus(), now), errText)
	}
	return tw.Flush()
}

// currentState is a task's state and how long ago it was reached.
func currentState(st *minkepb.TaskStatus, now time.Time) string {
	s := title(st.GetState().String())
	if ts := st.GetTimestamp(); ts != nil {
		s += " " + humanDuration(now.Sub(ts.AsTime())) + " ago"
	}
	return s
}

// humanDuration renders d roughly, as docker does ("3 seconds", "About a
// minute", "2 hours").
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Round(time.Hour).Hours()); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	default:
		return fmt.Sprintf("%d days", h/24)
	}
}

// writeNodes prints `node ls`, sorted by hostname.
func writeNodes(w io.Writer, nodes []*minkepb.Node) error {
	nodes = append([]*minkepb.Node(nil), nodes...)
	sort.SliceStable(nodes, func(i, j int) bool {
		return nodes[i].GetDescription().GetHostname() < nodes[j].GetDescription().GetHostname()
	})
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tHOSTNAME\tSTATUS\tAVAILABILITY\tMANAGER STATUS\tADDR")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortID(n.GetMeta().GetId()), n.GetDescription().GetHostname(),
			nodeStatus(n), title(n.GetSpec().GetAvailability().String()),
			managerStatus(n), n.GetStatus().GetAddr())
	}
	return tw.Flush()
}

// nodeStatus is the STATUS column: the state, and "(restarting)" while the
// node is held for a planned restart.
func nodeStatus(n *minkepb.Node) string {
	s := title(n.GetStatus().GetState().String())
	if n.GetStatus().GetRestartDeadline() != nil {
		s += " (restarting)"
	}
	return s
}

// managerStatus is docker's MANAGER STATUS column: empty for workers.
func managerStatus(n *minkepb.Node) string {
	ms := n.GetManagerStatus()
	switch {
	case n.GetRole() != minkepb.NodeRole_MANAGER:
		return ""
	case ms.GetLeader():
		return "Leader"
	case ms.GetReachability() == minkepb.ManagerStatus_REACHABLE:
		return "Reachable"
	case ms.GetReachability() == minkepb.ManagerStatus_UNREACHABLE:
		return "Unreachable"
	}
	return "Unknown"
}

// hostnames maps node IDs to hostnames.
func hostnames(nodes []*minkepb.Node) map[string]string {
	m := make(map[string]string, len(nodes))
	for _, n := range nodes {
		m[n.GetMeta().GetId()] = n.GetDescription().GetHostname()
	}
	return m
}

// writeServiceDetail prints `service inspect` for people: one aligned
// "Key: value" line per set field.
func writeServiceDetail(w io.Writer, s *minkepb.Service, counts *minkepb.ReplicaCounts) error {
	spec := s.GetSpec()
	c := spec.GetTask().GetContainer()
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("ID", s.GetMeta().GetId())
	row("Name", spec.GetName())
	row("Labels", joinMap(spec.GetLabels()))
	row("Mode", serviceMode(spec))
	replicas := fmt.Sprint(spec.GetReplicated().GetReplicas())
	if counts != nil {
		replicas = fmt.Sprintf("%d/%d running", counts.GetRunning(), counts.GetDesired())
		if counts.GetTotalCompletions() > 0 {
			replicas += fmt.Sprintf(", %d/%d completed", counts.GetCompleted(), counts.GetTotalCompletions())
		}
	}
	row("Replicas", replicas)
	if j := spec.GetReplicatedJob(); j != nil {
		row("Max concurrent", fmt.Sprint(j.GetMaxConcurrent()))
	}
	row("Image", c.GetImage())
	row("Entrypoint", strings.Join(c.GetCommand(), " "))
	row("Args", strings.Join(c.GetArgs(), " "))
	row("Env", strings.Join(c.GetEnv(), ", "))
	row("Workdir", c.GetDir())
	row("User", c.GetUser())
	row("Stop grace period", formatDuration(c.GetStopGracePeriod()))
	row("Ports", formatPorts(s.GetEndpoint()))
	row("Virtual IP", formatVIP(s))
	row("Networks", formatNetworks(s)) // network.go
	res := spec.GetTask().GetResources()
	row("Limits", formatResources(res.GetLimits()))
	row("Reservations", formatResources(res.GetReservations()))
	if r := spec.GetTask().GetRestart(); r != nil {
		p := "condition=" + strings.ToLower(strings.ReplaceAll(r.GetCondition().String(), "_", "-"))
		if r.GetDelay() != nil {
			p += " delay=" + formatDuration(r.GetDelay())
		}
		if r.GetMaxAttempts() > 0 {
			p += fmt.Sprintf(" max-attempts=%d", r.GetMaxAttempts())
		}
		if r.GetWindow() != nil {
			p += " window=" + formatDuration(r.GetWindow())
		}
		row("Restart policy", p)
	}
	if p := spec.GetTask().GetPlacement(); p != nil {
		row("Constraints", strings.Join(p.GetConstraints(), ", "))
		row("Preferences", strings.Join(p.GetPreferences(), ", "))
		if p.GetMaxReplicasPerNode() > 0 {
			row("Max replicas per node", fmt.Sprint(p.GetMaxReplicasPerNode()))
		}
	}
	row("Update config", formatUpdateConfig(spec.GetUpdateConfig()))
	row("Rollback config", formatUpdateConfig(spec.GetRollbackConfig()))
	if us := s.GetUpdateStatus(); us != nil {
		st := updateStateName(us.GetState())
		if us.GetMessage() != "" {
			st += ": " + us.GetMessage()
		}
		row("Update status", st)
		row("Update started", formatTime(us.GetStartedAt()))
		row("Update completed", formatTime(us.GetCompletedAt()))
	}
	if s.GetPreviousSpec() != nil {
		row("Previous image", s.GetPreviousSpec().GetTask().GetContainer().GetImage())
	}
	if f := spec.GetTask().GetForceUpdate(); f > 0 {
		row("Force update", fmt.Sprint(f))
	}
	row("Created", formatTime(s.GetMeta().GetCreatedAt()))
	row("Updated", formatTime(s.GetMeta().GetUpdatedAt()))
	row("Version", fmt.Sprint(s.GetMeta().GetVersion()))
	return tw.Flush()
}

func joinMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}

func formatResources(r *minkepb.Resources) string {
	var parts []string
	if n := r.GetNanoCpus(); n != 0 {
		parts = append(parts, fmt.Sprintf("cpu=%s", formatCPUs(n)))
	}
	if n := r.GetMemoryBytes(); n != 0 {
		parts = append(parts, "memory="+formatSize(n))
	}
	return strings.Join(parts, " ")
}

// formatCPUs renders nano CPUs as a decimal number of CPUs without
// trailing zeros.
func formatCPUs(n int64) string {
	s := fmt.Sprintf("%d.%09d", n/1e9, n%1e9)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// formatSize renders bytes in the largest binary unit that divides them.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", n)
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// formatUpdateConfig renders an update or rollback config on one line;
// "" when unset (swarm's defaults apply).
func formatUpdateConfig(c *minkepb.UpdateConfig) string {
	if c == nil {
		return ""
	}
	monitor := "5s"
	if c.GetMonitor() != nil {
		monitor = formatDuration(c.GetMonitor())
	}
	delay := "0s"
	if c.GetDelay() != nil {
		delay = formatDuration(c.GetDelay())
	}
	return fmt.Sprintf("parallelism=%d delay=%s failure-action=%s monitor=%s max-failure-ratio=%g order=%s",
		c.GetParallelism(), delay, strings.ToLower(c.GetFailureAction().String()), monitor, c.GetMaxFailureRatio(),
		strings.ReplaceAll(strings.ToLower(c.GetOrder().String()), "_", "-"))
}
