package main

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUserMessage(t *testing.T) {
	notFound := status.Error(codes.NotFound, `service "web" not found`)
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{notFound, `service "web" not found`},
		{fmt.Errorf("removing web: %w", notFound), `removing web: service "web" not found`},
		{status.Error(codes.Unavailable, "connection refused"),
			"cannot reach the manager at unix:///x.sock (is it running? set --host or MINKE_HOST): connection refused"},
	}
	for _, tt := range tests {
		if got := userMessage(tt.err, "unix:///x.sock"); got != tt.want {
			t.Errorf("userMessage(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestServerErrorsPrinted(t *testing.T) {
	f := &fakeAPI{err: status.Error(codes.InvalidArgument, "spec.task.container.image: must not be empty")}
	code, stdout, stderr, _ := runFake(t, f, "service", "ls")
	if code != 1 || stdout != "" || stderr != "Error: spec.task.container.image: must not be empty\n" {
		t.Errorf("got exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// rm reports each failure and still exits 1.
	code, _, stderr, _ = runFake(t, f, "service", "rm", "a", "b")
	if code != 1 || stderr != "Error: spec.task.container.image: must not be empty\nError: spec.task.container.image: must not be empty\n" {
		t.Errorf("rm: got exit %d, stderr %q", code, stderr)
	}
}

func TestCreateWaitFailureExits1(t *testing.T) {
	f := &fakeAPI{waitErr: errors.New("task web.1 (abc) failed: exec: no such file")}
	code, stdout, stderr, _ := runFake(t, f, "service", "create", "--name", "web", "busybox")
	if code != 1 || stdout != "svc0123456789abcdef\n" {
		t.Errorf("got exit %d, stdout %q", code, stdout)
	}
	if want := "web: 0/2 running\nweb: 2/2 running\nError: task web.1 (abc) failed: exec: no such file\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

func TestHostFromEnv(t *testing.T) {
	a := &app{}
	root := newRootCmd(a, func(k string) string {
		if k == hostEnv {
			return "tcp://10.0.0.1:4242"
		}
		return ""
	})
	if err := root.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if a.host != "tcp://10.0.0.1:4242" {
		t.Errorf("host = %q, want the %s value", a.host, hostEnv)
	}
}
