package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// hostResolvConf is read for the container's resolv.conf when the spec
// names no DNS servers. A variable so tests can point it elsewhere.
var hostResolvConf = "/etc/resolv.conf"

// defaultDNS is what docker falls back to when the host has only loopback
// nameservers: they answer on the host's loopback, which a container in
// its own network namespace cannot reach.
var defaultDNS = []string{"8.8.8.8", "8.8.4.4"}

// writeEtcFiles writes the container's hosts, hostname and resolv.conf into
// dir and returns the bind mounts that put them at /etc/... in the
// container, as docker does (so the image's files are untouched and a
// read-only root keeps them writable).
func writeEtcFiles(spec *ContainerSpec, dir string) ([]initMount, error) {
	resolv, err := resolvConf(spec)
	if err != nil {
		return nil, err
	}
	files := []struct{ name, content string }{
		{"hosts", hostsFile(spec)},
		{"hostname", hostname(spec.ID) + "\n"},
		{"resolv.conf", resolv},
	}
	var mounts []initMount
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			return nil, fmt.Errorf("runtime: writing %s: %w", f.name, err)
		}
		mounts = append(mounts, initMount{Type: "bind", Source: p, Target: "/etc/" + f.name})
	}
	return mounts, nil
}

func hostsFile(spec *ContainerSpec) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, l := range spec.ExtraHosts {
		f := strings.Fields(l)
		b.WriteString(f[0] + "\t" + strings.Join(f[1:], " ") + "\n")
	}
	return b.String()
}

// resolvConf builds the container's resolv.conf: the spec's servers,
// search domains and options, each falling back to the host's; loopback
// nameservers of the host are dropped.
func resolvConf(spec *ContainerSpec) (string, error) {
	servers, search, options := spec.DNSServers, spec.DNSSearch, spec.DNSOptions
	if len(servers) == 0 || len(search) == 0 || len(options) == 0 {
		hs, hsearch, hopts, err := readResolvConf(hostResolvConf)
		if err != nil {
			return "", err
		}
		if len(servers) == 0 {
			for _, s := range hs {
				if a, err := netip.ParseAddr(s); err == nil && !a.IsLoopback() {
					servers = append(servers, s)
				}
			}
			if len(servers) == 0 {
				servers = defaultDNS
			}
		}
		if len(search) == 0 {
			search = hsearch
		}
		if len(options) == 0 {
			options = hopts
		}
	}
	var b strings.Builder
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.String(), nil
}

// readResolvConf returns the nameservers, search domains and options of a
// resolv.conf; a missing file is empty.
func readResolvConf(path string) (servers, search, options []string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("runtime: reading %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain": // the last of them wins, as in the resolver
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	return servers, search, options, nil
}
