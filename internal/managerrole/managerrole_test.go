package managerrole

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeManager writes a shell script standing in for the manager binary:
// it records its arguments and the token it got, then runs body.
func fakeManager(t *testing.T, body string) (bin, record string) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	record = filepath.Join(dir, "record")
	bin = filepath.Join(dir, "manager")
	script := "#!/bin/sh\necho \"$@\" > " + record + "\necho \"token=$" + TokenEnv + "\" >> " + record + "\n" + body + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, record
}

// workerDir is a worker data directory with a node identity and a manager
// role directory holding Raft state.
func workerDir(t *testing.T) (data, dir string) {
	t.Helper()
	data = t.TempDir()
	for _, f := range []string{"node-id", "node-secret"} {
		if err := os.WriteFile(filepath.Join(data, f), []byte(f+"-value"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join(data, "manager")
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	return data, dir
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		joinAddr   string
		wantErr    error  // errors.Is
		wantMsg    string // in the error
		keepsRaft  bool
		wantInArgs []string
	}{
		{name: "demoted", body: "exit 3", wantErr: ErrDemoted, keepsRaft: false,
			wantInArgs: []string{"--promoted-worker", "--listen-addr 10.0.0.1:4242", "token="}},
		{name: "failed join leaves no raft state", body: "exit 1", joinAddr: "10.0.0.9:4242", wantMsg: "exit status 1", keepsRaft: false,
			wantInArgs: []string{"--join 10.0.0.9:4242", "token=SECRET"}},
		{name: "failed resume keeps raft state", body: "exit 1", wantMsg: "exit status 1", keepsRaft: true},
		{name: "exited", body: "exit 0", wantMsg: "exited", keepsRaft: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, record := fakeManager(t, tc.body)
			data, dir := workerDir(t)
			err := Run(context.Background(), Config{Binary: bin, WorkerDataDir: data, Dir: dir,
				ListenAddr: "10.0.0.1:4242", GossipAddr: "10.0.0.1:4244", Hostname: "w1",
				Token: "SECRET", JoinAddr: tc.joinAddr})
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.wantMsg)
			}
			if _, serr := os.Stat(filepath.Join(dir, "raft")); (serr == nil) != tc.keepsRaft {
				t.Errorf("raft state kept = %v, want %v", serr == nil, tc.keepsRaft)
			}
			b, err := os.ReadFile(filepath.Join(dir, "node-secret"))
			if err != nil || string(b) != "node-secret-value" {
				t.Errorf("node-secret in the role's directory: %q, %v", b, err)
			}
			rec, _ := os.ReadFile(record)
			for _, want := range tc.wantInArgs {
				if !strings.Contains(string(rec), want) {
					t.Errorf("the manager got %q, want %q in it", rec, want)
				}
			}
			if strings.Contains(strings.SplitN(string(rec), "\n", 2)[0], "SECRET") {
				t.Errorf("the token is on the command line: %q", rec)
			}
		})
	}
}

// TestRunStops: when ctx ends the role gets SIGTERM and Run returns once it
// has exited.
func TestRunStops(t *testing.T) {
	bin, record := fakeManager(t, "trap 'echo term >> "+"$0.term; exit 0' TERM\nwhile :; do sleep 0.05; done")
	_ = record
	data, dir := workerDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Binary: bin, WorkerDataDir: data, Dir: dir}) }()
	// Cancel once the script runs (it has written its record).
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(record); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := os.Stat(bin + ".term"); err != nil {
		t.Errorf("the role did not get SIGTERM: %v", err)
	}
}

func TestRunMissingBinary(t *testing.T) {
	data, dir := workerDir(t)
	err := Run(context.Background(), Config{Binary: filepath.Join(t.TempDir(), "manager"), WorkerDataDir: data, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "install.sh --role worker") {
		t.Errorf("Run = %v, want the error naming what to install", err)
	}
}
