package runtime

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type tarEntry struct {
	name, link   string
	typ          byte
	mode         int64
	body         string
	uid, gid     int
	major, minor int64
	pax          map[string]string // PAX records, e.g. xattrs
	mtime        time.Time
}

func mkTar(t testing.TB, entries []tarEntry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body)), Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, PAXRecords: e.pax, ModTime: e.mtime}
		if e.pax != nil {
			h.Format = tar.FormatPAX
		}

		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func TestApplyLayerWhiteoutsAndLinks(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	err := applyLayer(dir, mkTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0::/root:/bin/sh\n", uid: 1, gid: 2},
		{name: "etc/.wh.shadow", typ: tar.TypeReg},
		{name: "var/cache/", typ: tar.TypeDir, mode: 0o750},
		{name: "var/cache/.wh..wh..opq", typ: tar.TypeReg},
		{name: "bin/tool", typ: tar.TypeReg, mode: 0o4755, body: "#!"},
		{name: "bin/alias", typ: tar.TypeLink, link: "bin/tool"},
		{name: "bin/sym", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{name: "/abs/file", typ: tar.TypeReg, body: "inside"},
	}), unpackLimits{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("whiteout is a 0/0 char device", func(t *testing.T) {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, "etc/shadow"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Fatalf("mode %o rdev %d, want char device 0/0", st.Mode, st.Rdev)
		}
		if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.shadow")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf(".wh. file kept: %v", err)
		}
	})
	t.Run("opaque dir has the xattr", func(t *testing.T) {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dir, "var/cache"), "trusted.overlay.opaque", buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Fatalf("opaque xattr = %q, %v", buf[:n], err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "var/cache/.wh..wh..opq")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("opaque marker kept: %v", err)
		}
	})
	t.Run("hard link shares the inode", func(t *testing.T) {
		a, _ := os.Stat(filepath.Join(dir, "bin/tool"))
		b, err := os.Stat(filepath.Join(dir, "bin/alias"))
		if err != nil || !os.SameFile(a, b) {
			t.Fatalf("alias is not a hard link of tool: %v", err)
		}
	})
	t.Run("modes owners and symlinks are kept", func(t *testing.T) {
		fi, _ := os.Stat(filepath.Join(dir, "bin/tool"))
		if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
			t.Fatalf("tool mode %v", fi.Mode())
		}
		fi, _ = os.Stat(filepath.Join(dir, "var/cache"))
		if fi.Mode().Perm() != 0o750 {
			t.Fatalf("var/cache mode %v", fi.Mode())
		}
		fi, _ = os.Stat(filepath.Join(dir, "etc/passwd"))
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1 || st.Gid != 2 {
			t.Fatalf("passwd owner %d:%d, want 1:2", st.Uid, st.Gid)
		}
		if l, err := os.Readlink(filepath.Join(dir, "bin/sym")); err != nil || l != "/etc/passwd" {
			t.Fatalf("symlink = %q, %v", l, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "abs/file")); err != nil || string(b) != "inside" {
			t.Fatalf("absolute entry not resolved inside: %q, %v", b, err)
		}
	})
}

func TestApplyLayerRefusesEscapes(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"dotdot", []tarEntry{{name: "../evil", typ: tar.TypeReg}}},
		{"dotdot inside", []tarEntry{{name: "a/../../evil", typ: tar.TypeReg}}},
		{"dotdot whiteout", []tarEntry{{name: "../.wh.evil", typ: tar.TypeReg}}},
		{"whiteout of the parent", []tarEntry{{name: ".wh...", typ: tar.TypeReg}}},
		{"whiteout of the layer root", []tarEntry{{name: "x/.wh..", typ: tar.TypeReg}}},
		{"whiteout of nothing", []tarEntry{{name: "x/.wh.", typ: tar.TypeReg}}},
		{"symlink parent", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "link/evil", typ: tar.TypeReg},
		}},
		{"relative symlink parent", []tarEntry{
			{name: "up", typ: tar.TypeSymlink, link: "../.."},
			{name: "up/evil", typ: tar.TypeReg},
		}},
		{"hard link outside", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}},
		{"hard link through symlink", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "/etc"},
			{name: "h", typ: tar.TypeLink, link: "link/passwd"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "layer")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := applyLayer(dir, mkTar(t, tc.entries), unpackLimits{})
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			if _, err := os.Lstat(filepath.Join(parent, "evil")); err == nil {
				t.Fatal("file written outside the layer")
			}
		})
	}
}

func TestApplyLayerDeviceNodes(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		entry   tarEntry
		wantErr string // "" when the entry is kept
	}{
		{"block device", tarEntry{name: "dev/sda", typ: tar.TypeBlock, major: 8}, `"dev/sda" is a block device 8:0`},
		{"char device", tarEntry{name: "dev/mem", typ: tar.TypeChar, major: 1, minor: 1}, `"dev/mem" is a character device 1:1`},
		{"overlay whiteout", tarEntry{name: "gone", typ: tar.TypeChar}, ""},
		{"fifo", tarEntry{name: "pipe", typ: tar.TypeFifo}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := applyLayer(dir, mkTar(t, []tarEntry{tc.entry}), unpackLimits{})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := os.Lstat(filepath.Join(dir, tc.entry.name)); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrDeviceNode) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrDeviceNode containing %q", err, tc.wantErr)
			}
			if _, err := os.Lstat(filepath.Join(dir, tc.entry.name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("device node created: %v", err)
			}
		})
	}
}

func TestApplyLayerKeepsXattrsAndTimes(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mtime := time.Date(2020, 5, 17, 12, 0, 0, 0, time.UTC)
	// security.capability as setcap writes it: v2, cap_net_bind_service
	// permitted and effective.
	fcap := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	err := applyLayer(dir, mkTar(t, []tarEntry{
		{name: "usr/", typ: tar.TypeDir, mode: 0o755, mtime: mtime},
		{name: "usr/f", typ: tar.TypeReg, body: "x", mtime: mtime, pax: map[string]string{
			"SCHILY.xattr.user.origin":            "test",
			"SCHILY.xattr.security.capability":    fcap,
			"SCHILY.xattr.trusted.overlay.opaque": "y",
		}},
		{name: "usr/link", typ: tar.TypeSymlink, link: "f", pax: map[string]string{"SCHILY.xattr.user.origin": "test"}},
	}), unpackLimits{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "usr/f")
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(f, "user.origin", buf); err != nil || string(buf[:n]) != "test" {
		t.Errorf("user.origin = %q, %v", buf[:n], err)
	}
	if n, err := unix.Lgetxattr(f, "security.capability", buf); err != nil || string(buf[:n]) != fcap {
		t.Errorf("security.capability = %x, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(f, "trusted.overlay.opaque", buf); err == nil {
		t.Error("trusted.overlay.opaque was applied from the image")
	}
	for _, p := range []string{"usr", "usr/f"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s mtime = %v, %v; want %v", p, fi.ModTime(), err, mtime)
		}
	}
}

func TestApplyLayerSizeCap(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"at the cap", 1024, false},
		{"over the cap", 1025, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := applyLayer(dir, mkTar(t, []tarEntry{{name: "big", typ: tar.TypeReg, body: strings.Repeat("z", tc.size)}}), unpackLimits{MaxFileSize: 1024})
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrOversize) || !strings.Contains(err.Error(), `"big" is 1025 bytes; the limit is 1024`) {
				t.Fatalf("err = %v, want ErrOversize naming the file and the limit", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "big")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("oversize file written: %v", err)
			}
		})
	}
}

// A directory (or its parent) replaced by a symlink later in the same
// layer must not have the directory's metadata applied through the link.
func TestApplyLayerDirReplacedBySymlink(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		entries func(outside string) []tarEntry
	}{
		{"the directory", func(outside string) []tarEntry {
			return []tarEntry{
				{name: "d/", typ: tar.TypeDir, mode: 0o777, uid: 4242},
				{name: "d", typ: tar.TypeSymlink, link: outside},
			}
		}},
		{"its parent", func(outside string) []tarEntry {
			return []tarEntry{
				{name: "p/victim/", typ: tar.TypeDir, mode: 0o777, uid: 4242},
				{name: "p", typ: tar.TypeSymlink, link: filepath.Dir(outside)},
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "victim")
			if err := os.Mkdir(outside, 0o700); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "layer")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := applyLayer(dir, mkTar(t, tc.entries(outside)), unpackLimits{}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(outside)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				t.Fatalf("directory outside the layer changed: mode %v uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
			}
		})
	}
}
