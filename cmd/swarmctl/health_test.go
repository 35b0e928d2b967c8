package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestServiceCreateHealthAndStopFlags(t *testing.T) {
	tests := []struct {
		args []string
		want *minkepb.ContainerSpec
	}{
		{[]string{"img"}, &minkepb.ContainerSpec{Image: "img"}},
		{[]string{"--health-cmd", "curl -f localhost || exit 1", "--health-interval", "5s", "--health-timeout", "2s",
			"--health-retries", "4", "--health-start-period", "1m", "img"},
			&minkepb.ContainerSpec{Image: "img", Healthcheck: &minkepb.HealthConfig{
				Test: []string{"CMD-SHELL", "curl -f localhost || exit 1"}, Interval: durationpb.New(5 * time.Second),
				Timeout: durationpb.New(2 * time.Second), StartPeriod: durationpb.New(time.Minute), Retries: 4}}},
		// Timings alone keep the image's test.
		{[]string{"--health-interval", "1s", "img"},
			&minkepb.ContainerSpec{Image: "img", Healthcheck: &minkepb.HealthConfig{Interval: durationpb.New(time.Second)}}},
		{[]string{"--no-healthcheck", "img"},
			&minkepb.ContainerSpec{Image: "img", Healthcheck: &minkepb.HealthConfig{Test: []string{"NONE"}}}},
		{[]string{"--stop-signal", "SIGQUIT", "--init", "img"},
			&minkepb.ContainerSpec{Image: "img", StopSignal: "SIGQUIT", Init: true}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeAPI{}
			code, _, stderr, _ := runFake(t, f, append([]string{"service", "create", "-d"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := f.created.GetTask().GetContainer(); !proto.Equal(got, tt.want) {
				t.Errorf("container spec\n got  %v\n want %v", got, tt.want)
			}
		})
	}
}

func TestServiceCreateRejectsBadHealthFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--no-healthcheck", "--health-cmd", "true", "x"}, "--no-healthcheck conflicts with --health-* options"},
		{[]string{"--health-interval", "soon", "x"}, `invalid --health-interval "soon"`},
		{[]string{"--health-timeout", "10us", "x"}, `invalid --health-timeout "10us": want 0 (the default) or at least 1ms`},
		{[]string{"--health-retries", "-1", "x"}, `invalid --health-retries "-1"`},
		{[]string{"--stop-signal", "SIGNOPE", "x"}, `invalid --stop-signal: signal "SIGNOPE": unknown name`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeAPI{}
			code, _, stderr, connected := runFake(t, f, append([]string{"service", "create"}, tt.args...)...)
			if code != 1 || connected || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, connected %v, stderr %q; want 1, no connection, %q", code, connected, stderr, tt.wantErr)
			}
		})
	}
}

func TestServiceLogsFlags(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	f := &fakeAPI{
		services: []*minkepb.Service{service("aaaa0123456789abcdef", "api", "img", 1)},
		logs: []*minkepb.LogMessage{{TaskId: "t1aaaaaaaaaaaaaaaa", NodeId: "n1", Slot: 1, Data: []byte("hi\n"),
			Timestamp: timestamppb.New(at), Stream: "stdout"}},
		nodes: []*minkepb.Node{{Meta: &minkepb.Meta{Id: "n1"}, Description: &minkepb.NodeDescription{Hostname: "h1"}}},
	}
	code, stdout, stderr, _ := runFake(t, f, "service", "logs", "--tail", "5", "--since", "2026-01-01T00:00:00Z", "-t", "api")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := "api.1.t1aaaaaaaaaa@h1    | 2026-01-02T03:04:05.0000006Z hi\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	req := f.logsReq
	if req.Tail == nil || req.GetTail() != 5 || !req.GetSince().AsTime().Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("request %v: want tail 5, since 2026-01-01", req)
	}
	if code, _, stderr, _ := runFake(t, f, "service", "logs", "--tail", "x", "api"); code != 1 || !strings.Contains(stderr, `invalid --tail "x"`) {
		t.Errorf("--tail x: exit %d, stderr %q", code, stderr)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"10m", now.Add(-10 * time.Minute)},
		{"2026-04-30T10:00:00Z", time.Date(2026, 4, 30, 10, 0, 0, 0, time.UTC)},
		{"2026-04-30", time.Date(2026, 4, 30, 0, 0, 0, 0, time.UTC)},
		{"1700000000", time.Unix(1700000000, 0)},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseSince("yesterday", now); err == nil {
		t.Error("parseSince(yesterday) succeeded")
	}
}
