//go:build linux

package bootstrap

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/minke-io/minke/internal/netharness"
)

// vm is one host of the guide: a network namespace, and a directory that
// stands for its root filesystem. Paths the guide's files use (/etc/minke,
// /var/lib/minke, /run/minke, /usr/local/bin, /opt/minke) are mapped below
// it; nothing is written to this machine's own.
type vm struct {
	t      *testing.T
	host   *netharness.Host
	root   string
	paths  *strings.Replacer
	procs  map[string]*netharness.Proc // by unit
	starts int
}

// deployDir is this tree's deploy/ (the image's /opt/minke/deploy).
func deployDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy")
}

func newVM(t *testing.T, h *netharness.Host, root string) *vm {
	binDir := filepath.Dir(bins.Manager)
	return &vm{t: t, host: h, root: root, procs: map[string]*netharness.Proc{},
		paths: strings.NewReplacer(
			"/opt/minke/bin", binDir,
			"/opt/minke/deploy", deployDir(t),
			"/usr/local/bin", root+"/usr/local/bin",
			"/etc/minke", root+"/etc/minke",
			"/var/lib/minke", root+"/var/lib/minke",
			"/run/minke", root+"/run/minke",
		)}
}

// cloudConfig is the part of cloud-config the guide's files use.
type cloudConfig struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Permissions string `yaml:"permissions"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
	RunCmd [][]string `yaml:"runcmd"`
}

// render fills in the named placeholders, as envsubst with a variable list
// does, and fails on any placeholder left.
func render(t *testing.T, file string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir(t), "cloud-init", file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "${"+k+"}", v)
	}
	if i := strings.Index(s, "${"); i >= 0 {
		t.Fatalf("%s: placeholder left: %.40s", file, s[i:])
	}
	return s
}

// boot runs rendered user data the way cloud-init does: write_files, then
// each runcmd in order, failing the test on the first that fails.
func (v *vm) boot(userData string) {
	v.t.Helper()
	var cc cloudConfig
	if err := yaml.Unmarshal([]byte(userData), &cc); err != nil {
		v.t.Fatalf("user data: %v", err)
	}
	for _, f := range cc.WriteFiles {
		var perm os.FileMode = 0o644
		if f.Permissions != "" {
			if _, err := fmt.Sscanf(f.Permissions, "%o", &perm); err != nil {
				v.t.Fatalf("%s: permissions %q", f.Path, f.Permissions)
			}
		}
		p := v.paths.Replace(f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			v.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.Content), perm); err != nil {
			v.t.Fatal(err)
		}
	}
	for _, cmd := range cc.RunCmd {
		v.runcmd(cmd)
	}
}

func (v *vm) runcmd(cmd []string) {
	v.t.Helper()
	args := make([]string, len(cmd))
	for i, a := range cmd {
		args[i] = v.paths.Replace(a)
	}
	switch {
	case len(cmd) == 4 && cmd[0] == "systemctl" && cmd[1] == "enable" && cmd[2] == "--now":
		v.start(strings.TrimSuffix(cmd[3], ".service"))
		return
	case strings.HasSuffix(cmd[0], "/install.sh"):
		// A staged install into this VM's root: the same script, without
		// systemctl.
		args = append(args, "--destdir", v.root)
	}
	out, err := v.host.Exec(2*time.Minute, "env", append([]string{"MINKE_HOST=unix://" + v.socket()}, args...)...)
	if err != nil {
		v.t.Fatalf("runcmd %q: %v\n%s", cmd, err, out)
	}
}

func (v *vm) socket() string { return v.root + "/run/minke/manager.sock" }

// start does what systemd does for `systemctl start unit`: read its
// EnvironmentFile= files ("-" marks optional ones), make its
// RuntimeDirectory, and run ExecStart with $VAR expanded (unbraced: split
// into words).
func (v *vm) start(unit string) *netharness.Proc {
	v.t.Helper()
	b, err := os.ReadFile(filepath.Join(v.root, "etc/systemd/system", unit+".service"))
	if err != nil {
		v.t.Fatalf("unit %s not installed: %v", unit, err)
	}
	env := map[string]string{}
	var exec string
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case !ok:
		case key == "EnvironmentFile":
			optional := strings.HasPrefix(val, "-")
			data, err := os.ReadFile(v.paths.Replace(strings.TrimPrefix(val, "-")))
			if err != nil && !optional {
				v.t.Fatalf("%s: EnvironmentFile %s: %v", unit, val, err)
			}
			for _, l := range strings.Split(string(data), "\n") {
				k, val, ok := strings.Cut(strings.TrimSpace(l), "=")
				if ok && !strings.HasPrefix(k, "#") {
					env[k] = strings.Trim(val, `"`)
				}
			}
		case key == "ExecStart":
			exec = val
		case key == "RuntimeDirectory":
			if err := os.MkdirAll(v.paths.Replace("/run/"+val), 0o700); err != nil {
				v.t.Fatal(err)
			}
		}
	}
	var argv []string
	for _, w := range strings.Fields(exec) {
		if strings.HasPrefix(w, "$") {
			argv = append(argv, strings.Fields(env[strings.TrimPrefix(w, "$")])...)
			continue
		}
		argv = append(argv, v.paths.Replace(w))
	}
	v.starts++
	p := v.host.Start(fmt.Sprintf("%s-%d", unit, v.starts), argv[0], argv[1:]...)
	v.procs[unit] = p
	return p
}

// restart stops unit (SIGTERM) and starts it again, as `systemctl
// restart` does, reading its environment files afresh.
func (v *vm) restart(unit string) {
	v.t.Helper()
	v.procs[unit].Stop(10 * time.Second)
	v.start(unit)
}

// swarmctl runs swarmctl on this VM, as root, against its manager socket.
func (v *vm) swarmctl(args ...string) (string, error) {
	return v.host.Exec(45*time.Second, bins.Swarmctl, append([]string{"--host", v.socket()}, args...)...)
}
