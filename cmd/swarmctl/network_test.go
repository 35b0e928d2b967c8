package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// fakeNetAPI is fakeAPI with the network calls.
type fakeNetAPI struct {
	*fakeAPI
	nets    []*minkepb.Network
	created *minkepb.NetworkSpec
	removed []string
}

var _ networkAPI = (*fakeNetAPI)(nil)

func (f *fakeNetAPI) CreateNetwork(_ context.Context, spec *minkepb.NetworkSpec) (*minkepb.Network, error) {
	f.created = spec
	return &minkepb.Network{Meta: &minkepb.Meta{Id: "net0123456789abcdef"}, Spec: spec}, nil
}

func (f *fakeNetAPI) GetNetwork(_ context.Context, ref string) (*minkepb.Network, []string, error) {
	for _, n := range f.nets {
		if n.GetSpec().GetName() == ref || n.GetMeta().GetId() == ref {
			return n, []string{"web"}, nil
		}
	}
	return nil, nil, status.Errorf(codes.NotFound, "network %q not found", ref)
}

func (f *fakeNetAPI) ListNetworks(context.Context) ([]*minkepb.Network, error) { return f.nets, nil }

func (f *fakeNetAPI) RemoveNetwork(_ context.Context, ref string) error {
	if ref == "busy" {
		return status.Error(codes.FailedPrecondition, "network busy is in use by service(s) web")
	}
	f.removed = append(f.removed, ref)
	return nil
}

func runNetFake(t *testing.T, f *fakeNetAPI, args ...string) (code int, stdout, stderr string, connected bool) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, connect: func(context.Context, string) (controlAPI, error) {
		connected = true
		return f, nil
	}}
	code = execute(context.Background(), a, args, func(string) string { return "" })
	return code, out.String(), errOut.String(), connected
}

func testNets() []*minkepb.Network {
	return []*minkepb.Network{
		{Meta: &minkepb.Meta{Id: "aaaaaaaaaaaaaaaaaaaaaaaa1"}, Spec: &minkepb.NetworkSpec{Name: "back", Driver: "overlay"},
			Subnet: "10.10.1.0/24", Gateway: "10.10.1.1", Vni: 4097},
		{Meta: &minkepb.Meta{Id: "bbbbbbbbbbbbbbbbbbbbbbbb2"}, Spec: &minkepb.NetworkSpec{Name: "front", Driver: "overlay"},
			Subnet: "10.10.0.0/24", Gateway: "10.10.0.1", Vni: 4096},
	}
}

func TestNetworkCommands(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		f := &fakeNetAPI{fakeAPI: &fakeAPI{}}
		code, out, errOut, _ := runNetFake(t, f, "network", "create", "--subnet", "10.20.0.0/24", "--gateway", "10.20.0.254",
			"--label", "tier=web", "--label", "team=core", "front")
		if code != 0 || strings.TrimSpace(out) != "net0123456789abcdef" {
			t.Fatalf("code %d out %q err %q", code, out, errOut)
		}
		s := f.created
		if s.GetName() != "front" || s.GetSubnet() != "10.20.0.0/24" || s.GetGateway() != "10.20.0.254" || s.GetDriver() != "overlay" ||
			s.GetLabels()["tier"] != "web" || len(s.GetLabels()) != 2 {
			t.Fatalf("spec sent: %v", s)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"gateway without subnet", []string{"network", "create", "--gateway", "10.0.0.1", "x"}, "needs --subnet"},
		{"bad label", []string{"network", "create", "--label", "=v", "x"}, `--label "=v"`},
		{"no name", []string{"network", "create"}, "wants 1 argument"},
		{"bad format", []string{"network", "ls", "--format", "yaml"}, "invalid --format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut, connected := runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}}, tc.args...)
			if code != 1 || connected || !strings.Contains(errOut, tc.want) {
				t.Fatalf("code %d connected %v stderr %q; want a local error naming %q", code, connected, errOut, tc.want)
			}
		})
	}
	t.Run("ls", func(t *testing.T) {
		code, out, _, _ := runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}, nets: testNets()}, "network", "ls")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NETWORK ID") ||
			strings.Join(strings.Fields(lines[2]), " ") != "bbbbbbbbbbbb front overlay 10.10.0.0/24 10.10.0.1 4096" {
			t.Fatalf("ls:\n%s", out)
		}
		_, out, _, _ = runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}, nets: testNets()}, "network", "ls", "-q")
		if out != "aaaaaaaaaaaaaaaaaaaaaaaa1\nbbbbbbbbbbbbbbbbbbbbbbbb2\n" {
			t.Fatalf("ls -q: %q", out)
		}
		_, out, _, _ = runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}, nets: testNets()}, "network", "ls", "--format", "json")
		var got []map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || got[1]["subnet"] != "10.10.0.0/24" {
			t.Fatalf("ls json: %v %s", err, out)
		}
	})
	t.Run("inspect", func(t *testing.T) {
		code, out, errOut, _ := runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}, nets: testNets()}, "network", "inspect", "front", "back")
		var got []map[string]any
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 2 ||
			got[0]["vni"] != float64(4096) || got[0]["subnet"] != "10.10.0.0/24" || fmt.Sprint(got[0]["services"]) != "[web]" ||
			got[1]["spec"].(map[string]any)["name"] != "back" {
			t.Fatalf("inspect: code %d %v %q %q", code, err, out, errOut)
		}
		code, out, _, _ = runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}, nets: testNets()}, "network", "inspect", "--format", "table", "front")
		if code != 0 || !strings.Contains(out, "Subnet:     10.10.0.0/24") || !strings.Contains(out, "Services:   web") {
			t.Fatalf("inspect table:\n%s", out)
		}
		code, _, errOut, _ = runNetFake(t, &fakeNetAPI{fakeAPI: &fakeAPI{}, nets: testNets()}, "network", "inspect", "nope")
		if code != 1 || !strings.Contains(errOut, `network "nope" not found`) {
			t.Fatalf("inspect unknown: %d %q", code, errOut)
		}
	})
	t.Run("rm", func(t *testing.T) {
		f := &fakeNetAPI{fakeAPI: &fakeAPI{}}
		code, out, errOut, _ := runNetFake(t, f, "network", "rm", "front", "busy", "back")
		if code != 1 || out != "front\nback\n" || !strings.Contains(errOut, "busy: network busy is in use by service(s) web") ||
			strings.Join(f.removed, ",") != "front,back" {
			t.Fatalf("rm: code %d out %q err %q removed %v", code, out, errOut, f.removed)
		}
	})
}

func TestParseNetworkFlag(t *testing.T) {
	for _, tc := range []struct {
		in, target, aliases, err string
	}{
		{in: "front", target: "front"},
		{in: "name=front,alias=web,alias=www", target: "front", aliases: "web,www"},
		{in: "target=front", target: "front"},
		{in: "", err: "want NAME"},
		{in: "a,b", err: "want NAME"},
		{in: "alias=web", err: "name=NAME is required"},
		{in: "name=front,colour=red", err: `unknown key "colour"`},
		{in: "name=front,alias=", err: "alias needs a value"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			cfg, err := parseNetworkFlag("network", tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--network") {
					t.Fatalf("err %v, want one naming --network and %q", err, tc.err)
				}
				return
			}
			if err != nil || cfg.GetTarget() != tc.target || strings.Join(cfg.GetAliases(), ",") != tc.aliases {
				t.Fatalf("got %v, %v", cfg, err)
			}
		})
	}
}

func TestServiceNetworkFlags(t *testing.T) {
	f := &fakeAPI{}
	code, _, errOut, _ := runFake(t, f, "service", "create", "--detach", "--network", "front", "--network", "name=back,alias=api", "hello")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	got := f.created.GetTask().GetNetworks()
	if len(got) != 2 || got[0].GetTarget() != "front" || got[1].GetTarget() != "back" || got[1].GetAliases()[0] != "api" {
		t.Fatalf("networks sent: %v", got)
	}

	// --network-rm then --network-add, by name, on a spec that names IDs.
	o := networkUpdateOptions{rm: []string{"front"}, add: []string{"name=db,alias=sql"},
		ids: map[string]string{"front": "id-front", "db": "id-db"}}
	task := &minkepb.TaskSpec{Networks: []*minkepb.NetworkAttachmentConfig{{Target: "id-front"}, {Target: "id-back"}}}
	if err := o.apply(task); err != nil {
		t.Fatal(err)
	}
	if len(task.Networks) != 2 || task.Networks[0].GetTarget() != "id-back" || task.Networks[1].GetTarget() != "id-db" ||
		task.Networks[1].GetAliases()[0] != "sql" {
		t.Fatalf("after update: %v", task.Networks)
	}
	o = networkUpdateOptions{add: []string{"back"}, ids: map[string]string{"back": "id-back"}}
	if err := o.apply(task); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Fatalf("adding an attached network: %v", err)
	}
}

func TestFormatNetworks(t *testing.T) {
	svc := &minkepb.Service{Spec: &minkepb.ServiceSpec{Task: &minkepb.TaskSpec{Networks: []*minkepb.NetworkAttachmentConfig{
		{Target: "aaaaaaaaaaaaaaaaaaaaaaaa1", Aliases: []string{"www", "web2"}}, {Target: "bbbbbbbbbbbbbbbbbbbbbbbb2"}}}},
		Endpoint: &minkepb.Endpoint{VirtualIps: []*minkepb.EndpointVirtualIP{{NetworkId: "aaaaaaaaaaaaaaaaaaaaaaaa1", Addr: "10.10.0.2/24"}}}}
	want := "aaaaaaaaaaaa (VIP 10.10.0.2/24, aliases www web2), bbbbbbbbbbbb"
	if got := formatNetworks(svc); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var b bytes.Buffer
	if err := writeServiceDetail(&b, svc, nil); err != nil || !strings.Contains(b.String(), "Networks:") {
		t.Fatalf("service inspect has no Networks row:\n%s", b.String())
	}
}
