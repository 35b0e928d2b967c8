package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// hostEnv names the environment variable that sets --host's default;
// tlsDirEnv --tls-dir's.
const (
	hostEnv   = "MINKE_HOST"
	tlsDirEnv = "MINKE_TLS_DIR"
)

// controlAPI is what the commands need from a manager; *client.Client
// implements it and tests substitute a fake.
type controlAPI interface {
	CreateService(ctx context.Context, spec *minkepb.ServiceSpec, opts ...client.CreateOption) (*minkepb.Service, error)
	ResolveService(ctx context.Context, ref string) (*minkepb.Service, error)
	ListServices(ctx context.Context) ([]*minkepb.Service, map[string]*minkepb.ReplicaCounts, error)
	ScaleService(ctx context.Context, ref string, replicas uint64) (*minkepb.Service, error)
	RemoveService(ctx context.Context, ref string) error
	ListTasks(ctx context.Context, ref string) ([]*minkepb.Task, error)
	ListNodes(ctx context.Context) ([]*minkepb.Node, error)
	UpdateNodeRole(ctx context.Context, ref string, role minkepb.NodeRole) (*minkepb.Node, error)
	RemoveNode(ctx context.Context, ref string, force bool) error
	UpdateNode(ctx context.Context, ref string, availability *minkepb.NodeSpec_Availability, labelAdd map[string]string, labelRm []string) (*minkepb.Node, error)
	Backup(ctx context.Context) ([]byte, uint64, error)
	RotateJoinToken(ctx context.Context, role minkepb.NodeRole) (*minkepb.JoinTokens, error)
	GetCluster(ctx context.Context) (*minkepb.Cluster, string, error)
	ServiceLogs(ctx context.Context, ref string, follow bool, fn func(*minkepb.LogMessage) error) error
	ServiceLogsWith(ctx context.Context, req *minkepb.ServiceLogsRequest, fn func(*minkepb.LogMessage) error) error
	WaitForService(ctx context.Context, serviceID string, progress func(running, desired uint64, tasks []*minkepb.Task)) error
	PushImage(ctx context.Context, file, nameTag string) (name, digest string, err error)
	Close() error
}

var _ controlAPI = (*client.Client)(nil)

// app is the state the commands share: where to connect and where to write.
type app struct {
	host   string
	tlsDir string
	stdout io.Writer
	stderr io.Writer
	// connect opens the API; a test replaces it with a fake.
	connect func(ctx context.Context, host string) (controlAPI, error)
}

func (a *app) dialClient(ctx context.Context, host string) (controlAPI, error) {
	return client.Dial(ctx, host, client.WithTLSDir(a.tlsDir))
}

// withAPI connects, runs fn, and closes the connection.
func (a *app) withAPI(ctx context.Context, fn func(api controlAPI) error) error {
	api, err := a.connect(ctx, a.host)
	if err != nil {
		return err
	}
	defer api.Close()
	return fn(api)
}

// run executes swarmctl with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdout: stdout, stderr: stderr}
	a.connect = a.dialClient
	return execute(ctx, a, args, getenv)
}

// execute runs the command line args against a and returns the exit code.
func execute(ctx context.Context, a *app, args []string, getenv func(string) string) int {
	root := newRootCmd(a, getenv)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, errReported) {
			return 1
		}
		fmt.Fprintf(a.stderr, "Error: %s\n", userMessage(err, a.host))
		return 1
	}
	return 0
}

func newRootCmd(a *app, getenv func(string) string) *cobra.Command {
	defHost := getenv(hostEnv)
	if defHost == "" {
		defHost = client.DefaultHost
	}
	root := &cobra.Command{
		Use:           "swarmctl",
		Short:         "Manage a minke cluster",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().StringVar(&a.host, "host", defHost,
		"manager address: unix:///PATH, a socket path, or tcp://HOST:PORT (env "+hostEnv+")")
	root.PersistentFlags().StringVar(&a.tlsDir, "tls-dir", getenv(tlsDirEnv),
		"directory with ca.pem, cert.pem and key.pem for tcp:// hosts ('swarmctl cluster client-cert --out DIR' writes them; env "+tlsDirEnv+")")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(newServiceCmd(a), newNodeCmd(a), newImageCmd(a), newClusterCmd(a), newNetworkCmd(a))
	return root
}

// userMessage renders err for a person. gRPC errors contribute their
// message without the "rpc error: code = ... desc =" framing, also when
// wrapped; an unreachable manager gets a hint naming the address tried.
func connectionFailed(msg string) bool {
	for _, s := range []string{"connection error", "connection refused", "dial", "no such file"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func userMessage(err error, host string) string {
	msg := err.Error()
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return msg
	}
	st := se.GRPCStatus()
	msg = strings.Replace(msg, se.(error).Error(), st.Message(), 1)
	// Only a failed connection means the manager is not there; a running
	// manager's own Unavailable (no quorum, not the leader) says enough.
	if st.Code() == codes.Unavailable && connectionFailed(st.Message()) {
		msg = fmt.Sprintf("cannot reach the manager at %s (is it running? set --host or %s): %s", host, hostEnv, msg)
	}
	return msg
}

// exactArgs is cobra.ExactArgs with a message that shows the usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%q wants %d argument(s), got %d; usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with a message that shows the usage.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%q wants at least %d argument(s), got %d; usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}
