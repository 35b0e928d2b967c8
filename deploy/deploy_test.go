// Package deploy holds no Go code: it checks the files that bootstrap minke on
// VMs (systemd units, install.sh, env templates, cloud-init examples) against
// the real binaries, without installing anything on this machine.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

var roles = []string{"manager", "worker"}

// buildDir holds manager and worker built once for the whole run.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// helpFlags builds cmd/ROLE and returns the flag names its -h lists.
func helpFlags(t *testing.T, role string) map[string]bool {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "minke-deploy-test-"); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", buildDir+string(filepath.Separator),
			"github.com/minke-io/minke/cmd/manager", "github.com/minke-io/minke/cmd/worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	// -h exits non-zero (flag.ErrHelp); only the listing matters.
	out, _ := exec.Command(filepath.Join(buildDir, role), "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["data-dir"] {
		t.Fatalf("%s -h lists no --data-dir; cannot check flags. Output:\n%s", role, out)
	}
	return flags
}

// flagsIn returns the --flag names in s (both "--f v" and "--f=v").
func flagsIn(s string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?:^|\s)--?([a-z][a-z0-9-]*)`).FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// directives returns the values of KEY= lines of a unit, in order.
func directives(unit, key string) []string {
	var vals []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

// optsLines returns the values of MINKE_*_OPTS="..." assignments in s.
func optsLines(s string) map[string]string {
	opts := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(MINKE_[A-Z]+_OPTS)="([^"]*)"`).FindAllStringSubmatch(s, -1) {
		opts[m[1]] = m[2]
	}
	return opts
}

// optsRole says which binary reads each env variable.
var optsRole = map[string]string{"MINKE_MANAGER_OPTS": "manager", "MINKE_JOIN_OPTS": "manager", "MINKE_WORKER_OPTS": "worker"}

func checkOptsFlags(t *testing.T, where, content string) {
	t.Helper()
	opts := optsLines(content)
	if len(opts) == 0 {
		t.Errorf("%s sets no MINKE_*_OPTS", where)
	}
	for name, val := range opts {
		role, ok := optsRole[name]
		if !ok {
			t.Errorf("%s sets %s, which no unit reads", where, name)
			continue
		}
		known := helpFlags(t, role)
		for _, f := range flagsIn(val) {
			if !known[f] {
				t.Errorf("%s: %s passes --%s, which `%s -h` does not list", where, name, f, role)
			}
		}
	}
}

func TestUnits(t *testing.T) {
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			unit := readFile(t, filepath.Join("systemd", "minke-"+role+".service"))
			want := map[string]string{
				"After": "network-online.target", "Wants": "network-online.target", "Restart": "on-failure",
				"KillMode": "process", "Delegate": "yes", "LimitNOFILE": "1048576", "TasksMax": "infinity",
				"StateDirectory": "minke", "StateDirectoryMode": "0700", "WantedBy": "multi-user.target",
			}
			if role == "manager" {
				want["RuntimeDirectory"] = "minke"
				want["RuntimeDirectoryMode"] = "0700"
			}
			for k, v := range want {
				if got := directives(unit, k); !slices.Contains(got, v) {
					t.Errorf("%s=%s missing (have %q)", k, v, got)
				}
			}
			if env := directives(unit, "EnvironmentFile"); !slices.Contains(env, "/etc/minke/"+role+".env") {
				t.Errorf("EnvironmentFile=/etc/minke/%s.env missing (have %q)", role, env)
			}
			exec := directives(unit, "ExecStart")
			if len(exec) != 1 {
				t.Fatalf("want one ExecStart=, have %q", exec)
			}
			argv := strings.Fields(exec[0])
			if argv[0] != "/usr/local/bin/"+role {
				t.Errorf("ExecStart runs %s, want /usr/local/bin/%s (install.sh rewrites /usr/local/ for --prefix)", argv[0], role)
			}
			known := helpFlags(t, role)
			for _, f := range flagsIn(strings.Join(argv[1:], " ")) {
				if !known[f] {
					t.Errorf("ExecStart passes --%s, which `%s -h` does not list", f, role)
				}
			}
			if !strings.Contains(exec[0], "--data-dir=/var/lib/minke/"+role) {
				t.Errorf("ExecStart does not put --data-dir under StateDirectory /var/lib/minke: %s", exec[0])
			}
			if role == "manager" && !strings.Contains(exec[0], "--control-socket=/run/minke/manager.sock") {
				t.Errorf("ExecStart does not put the control socket in RuntimeDirectory /run/minke: %s", exec[0])
			}
			// Every $VAR of ExecStart is set by the env template or the join file.
			for _, m := range regexp.MustCompile(`\$\{?([A-Z_]+)`).FindAllStringSubmatch(exec[0], -1) {
				if _, ok := optsRole[m[1]]; !ok || optsRole[m[1]] != role {
					t.Errorf("ExecStart uses $%s, which no %s env file sets", m[1], role)
				}
			}
		})
	}
}

// TestUnitsVerify runs systemd-analyze verify on the units, pointed at the
// built binaries (it refuses an ExecStart that does not exist).
func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	var units []string
	for _, role := range roles {
		helpFlags(t, role) // builds the binaries
		unit := strings.ReplaceAll(readFile(t, filepath.Join("systemd", "minke-"+role+".service")), "/usr/local/bin/", buildDir+"/")
		p := filepath.Join(dir, "minke-"+role+".service")
		if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("systemd-analyze verify warns:\n%s", s)
	}
}

func TestEnvTemplates(t *testing.T) {
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			env := readFile(t, filepath.Join("env", role+".env"))
			checkOptsFlags(t, "env/"+role+".env", env)
			if !strings.Contains(env, "CHANGE-ME") {
				t.Error("the template has no CHANGE-ME placeholder: install.sh --start could not refuse an unedited file")
			}
		})
	}
}

func TestInstallScriptSyntax(t *testing.T) {
	if out, err := exec.Command("bash", "-n", "install.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n install.sh: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck not installed; skipped")
		return
	}
	if out, err := exec.Command("shellcheck", "install.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck install.sh: %v\n%s", err, out)
	}
}

// fakeBins returns a world-readable directory holding executable stand-ins
// for the three binaries.
func fakeBins(t *testing.T, names ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "minke-fake-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\necho fake "+n+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func install(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"install.sh"}, args...)...).CombinedOutput()
	return string(out), err
}

func TestInstallDryRun(t *testing.T) {
	bins := fakeBins(t, "manager", "worker", "swarmctl")
	for _, tc := range []struct {
		role, prefix string
	}{
		{"manager", ""}, {"worker", ""}, {"manager", "/opt/minke"},
	} {
		t.Run(tc.role+tc.prefix, func(t *testing.T) {
			args := []string{"--dry-run", "--role", tc.role, "--bin-dir", bins}
			prefix := "/usr/local"
			if tc.prefix != "" {
				args = append(args, "--prefix", tc.prefix)
				prefix = tc.prefix
			}
			out, err := install(t, args...)
			if err != nil {
				t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, want := range []string{
				"dry run",
				prefix + "/bin/" + tc.role,
				prefix + "/bin/swarmctl",
				"/etc/minke/" + tc.role + ".env",
				"/var/lib/minke",
				"/etc/systemd/system/minke-" + tc.role + ".service",
				"ExecStart=" + prefix + "/bin/" + tc.role + " ",
				"+ systemctl daemon-reload",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the plan does not mention %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "+ systemctl enable") || strings.Contains(out, "+ systemctl start") {
				t.Errorf("the plan starts the unit without --start:\n%s", out)
			}
			// A manager node needs no worker binary; a worker needs the
			// manager binary, its manager role once promoted.
			installs := func(b string) bool {
				return strings.Contains(out, "/bin/"+b+" ") || strings.Contains(out, "/bin/"+b+"\n")
			}
			if tc.role == "manager" && installs("worker") {
				t.Errorf("the manager plan installs the worker binary:\n%s", out)
			}
			if tc.role == "worker" && !installs("manager") {
				t.Errorf("the worker plan does not install the manager binary (its manager role when promoted):\n%s", out)
			}
		})
	}
}

func TestInstallRefuses(t *testing.T) {
	all := fakeBins(t, "manager", "worker", "swarmctl")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no role", []string{"--dry-run", "--bin-dir", all}, "--role is required"},
		{"unknown role", []string{"--dry-run", "--role", "scheduler", "--bin-dir", all}, "unknown role 'scheduler'"},
		{"unknown flag", []string{"--dry-run", "--role", "worker", "--force"}, "unknown argument '--force'"},
		{"missing binaries", []string{"--dry-run", "--role", "manager", "--bin-dir", fakeBins(t, "worker")}, "missing executable(s)"},
		{"relative prefix", []string{"--dry-run", "--role", "manager", "--bin-dir", all, "--prefix", "usr"}, "must be an absolute path"},
		{"start with destdir", []string{"--role", "manager", "--bin-dir", all, "--destdir", t.TempDir(), "--start"}, "cannot be combined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := install(t, tc.args...)
			if err == nil {
				t.Fatalf("install.sh %s succeeded; want it to refuse:\n%s", strings.Join(tc.args, " "), out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("install.sh %s: want %q in:\n%s", strings.Join(tc.args, " "), tc.want, out)
			}
		})
	}
}

// TestInstallNotRoot runs a real (not dry) install as an unprivileged user:
// it must stop before changing anything.
func TestInstallNotRoot(t *testing.T) {
	bins := fakeBins(t, "manager", "worker", "swarmctl")
	args := []string{"install.sh", "--role", "manager", "--bin-dir", bins}
	var cmd *exec.Cmd
	if os.Geteuid() != 0 {
		cmd = exec.Command("bash", args...)
	} else {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root and setpriv is not installed")
		}
		wd, _ := os.Getwd()
		if !worldReadable(wd) {
			t.Skipf("running as root and %s is not readable by nobody", wd)
		}
		cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "bash"}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs root") {
		t.Fatalf("install.sh as a non-root user: err %v, want it to refuse with 'needs root':\n%s", err, out)
	}
	if strings.Contains(string(out), "+ ") {
		t.Errorf("install.sh ran commands before refusing:\n%s", out)
	}
}

func worldReadable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o005 != 0o005 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// TestInstallDestdir stages a real install in a temporary tree twice: the
// files land with the right modes, a second run changes nothing, and an env
// file the operator edited is kept.
func TestInstallDestdir(t *testing.T) {
	bins := fakeBins(t, "manager", "worker", "swarmctl")
	root := t.TempDir()
	args := []string{"--role", "worker", "--bin-dir", bins, "--prefix", "/opt/minke", "--destdir", root}
	out, err := install(t, args...)
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if strings.Contains(out, "systemctl daemon-reload") && !strings.Contains(out, "on the target run") {
		t.Errorf("a staged install ran systemctl:\n%s", out)
	}
	for path, mode := range map[string]os.FileMode{
		"opt/minke/bin/worker":                    0o755,
		"opt/minke/bin/swarmctl":                  0o755,
		"opt/minke/share/doc/minke/README.md":     0o644,
		"etc/minke/worker.env":                    0o600,
		"var/lib/minke":                           0o700 | os.ModeDir,
		"etc/systemd/system/minke-worker.service": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != mode {
			t.Errorf("%s has mode %v, want %v", path, got, mode)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "opt/minke/bin/manager")); err != nil {
		t.Errorf("a worker install did not put the manager binary (its manager role when promoted) in place: %v", err)
	}
	unit := readFile(t, filepath.Join(root, "etc/systemd/system/minke-worker.service"))
	if exec := directives(unit, "ExecStart"); len(exec) != 1 || !strings.HasPrefix(exec[0], "/opt/minke/bin/worker ") {
		t.Errorf("installed unit's ExecStart does not follow --prefix: %q", exec)
	}

	envPath := filepath.Join(root, "etc/minke/worker.env")
	edited := []byte("MINKE_WORKER_OPTS=\"--join=10.0.0.1:4242 --token=MKTKN-2-worker-x\"\n")
	if err := os.WriteFile(envPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = install(t, args...)
	if err != nil {
		t.Fatalf("second install.sh run: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(envPath); !bytes.Equal(got, edited) {
		t.Errorf("the second run overwrote the edited env file:\n%s", got)
	}
	if strings.Contains(out, "+ mv") || strings.Contains(out, "+ install -m") {
		t.Errorf("the second run copied files again:\n%s", out)
	}
	if !strings.Contains(out, "keeping existing") {
		t.Errorf("the second run does not say it kept the env file:\n%s", out)
	}
}

// cloudInit describes each example: its role and the placeholders the
// operator fills in.
var cloudInit = map[string]struct {
	role         string
	placeholders []string
}{
	"first-manager.yaml": {"manager", []string{"MINKE_ADDR"}},
	"manager.yaml":       {"manager", []string{"MINKE_ADDR", "MINKE_JOIN_ADDR", "MINKE_MANAGER_TOKEN"}},
	"worker.yaml":        {"worker", []string{"MINKE_JOIN_ADDR", "MINKE_WORKER_TOKEN"}},
}

func TestCloudInit(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("cloud-init", "*.yaml"))
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	var want []string
	for n := range cloudInit {
		want = append(want, n)
	}
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("cloud-init files %q, want %q", names, want)
	}
	for name, ci := range cloudInit {
		t.Run(name, func(t *testing.T) {
			s := readFile(t, filepath.Join("cloud-init", name))
			if !strings.HasPrefix(s, "#cloud-config\n") {
				t.Error("does not start with #cloud-config")
			}
			for _, bad := range []string{"http://", "https://", "curl ", "wget "} {
				if strings.Contains(s, bad) {
					t.Errorf("fetches from the network (%q): the binaries come with the image", bad)
				}
			}
			if strings.Contains(s, "\t") {
				t.Error("has a tab: YAML indentation must be spaces")
			}
			// Every $ is a documented placeholder, so that envsubst (or
			// Terraform's templatefile) replaces exactly those.
			var used []string
			for _, m := range regexp.MustCompile(`\$(\{[^}]*\}|.)`).FindAllStringSubmatch(s, -1) {
				v := strings.Trim(m[1], "{}")
				if !strings.HasPrefix(m[1], "{") || !slices.Contains(ci.placeholders, v) {
					t.Errorf("$%s is not one of the placeholders %q", m[1], ci.placeholders)
					continue
				}
				if !slices.Contains(used, v) {
					used = append(used, v)
				}
			}
			sort.Strings(used)
			wantUsed := slices.Sorted(slices.Values(ci.placeholders))
			if !slices.Equal(used, wantUsed) {
				t.Errorf("uses placeholders %q, want %q", used, wantUsed)
			}
			for _, want := range []string{
				"path: /etc/minke/" + ci.role + ".env",
				"[/opt/minke/deploy/install.sh, --role, " + ci.role + ",",
				"[systemctl, enable, --now, minke-" + ci.role + ".service]",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("does not contain %q", want)
				}
			}
			checkOptsFlags(t, name, s)
			if name == "manager.yaml" && !strings.Contains(s, "rm -f /etc/minke/manager-join.env") {
				t.Error("a joining manager must delete manager-join.env once it has joined")
			}
			parseYAML(t, s)
		})
	}
}

// parseYAML parses s with Python's yaml module when it is there (go.mod has
// no YAML library) and checks the cloud-config keys used.
func parseYAML(t *testing.T, s string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import yaml").Run() != nil {
		t.Log("python3 with yaml not available: YAML not parsed")
		return
	}
	const script = `import sys, yaml
d = yaml.safe_load(sys.stdin)
assert sorted(d) == ["runcmd", "write_files"], sorted(d)
for w in d["write_files"]:
    assert w["permissions"] == "0600" and w["path"].startswith("/etc/minke/"), w
for c in d["runcmd"]:
    assert isinstance(c, list) and all(isinstance(a, str) for a in c), c
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(s)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("YAML check failed: %v\n%s", err, out)
	}
}
