package runtime

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// FuzzUnpack feeds hostile tarballs to the layer unpacker. Whatever the
// input, applyLayer must not panic, must not create, change or follow
// anything outside the layer directory, must leave no device node but
// overlayfs whiteouts (0/0 character devices), and no file over the size
// cap. The seeds are the attacks the unpacker is known to refuse, and
// ordinary layers; `go test` runs them, `go test -fuzz FuzzUnpack` mutates
// them.
func FuzzUnpack(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root (chown, mknod, trusted xattrs)")
	}
	seeds := [][]tarEntry{
		{{name: "etc/", typ: tar.TypeDir, mode: 0o755}, {name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0::/:/bin/sh\n"}},
		{{name: "../outside/evil", typ: tar.TypeReg, body: "x"}},
		{{name: "a/../../outside/evil", typ: tar.TypeReg}},
		{{name: "/../outside/evil", typ: tar.TypeReg}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "l/evil", typ: tar.TypeReg, body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside/sentinel"}, {name: "l", typ: tar.TypeReg, body: "overwrite"}},
		{{name: "d/", typ: tar.TypeDir, mode: 0o777}, {name: "d", typ: tar.TypeSymlink, link: "../outside"}},
		{{name: "p/q/", typ: tar.TypeDir, mode: 0o777}, {name: "p", typ: tar.TypeSymlink, link: "../outside"}},
		{{name: "h", typ: tar.TypeLink, link: "../outside/sentinel"}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "h", typ: tar.TypeLink, link: "l/sentinel"}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside/sentinel"}, {name: "h", typ: tar.TypeLink, link: "l"}, {name: "h", typ: tar.TypeReg, body: "x"}},
		{{name: "dev/sda", typ: tar.TypeBlock, major: 8}},
		{{name: "dev/mem", typ: tar.TypeChar, major: 1, minor: 1}},
		{{name: "gone", typ: tar.TypeChar}, {name: "pipe", typ: tar.TypeFifo}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "l/.wh.sentinel", typ: tar.TypeReg}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "l/.wh..wh..opq", typ: tar.TypeReg}},
		{{name: ".wh...", typ: tar.TypeReg}, {name: "x/.wh..", typ: tar.TypeReg}},
		{{name: "big", typ: tar.TypeReg, body: strings.Repeat("b", fuzzMaxFile+1)}},
		{{name: "f", typ: tar.TypeReg, body: "x", pax: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/outside", "SCHILY.xattr.user.a": "b"}}},
		{{name: "s", typ: tar.TypeReg, mode: 0o6755, uid: 1000, gid: 1000, body: "#!"}},
	}
	for _, s := range seeds {
		b, err := io.ReadAll(mkTar(f, s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("not a tar"))

	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "layer")
		outside := filepath.Join(parent, "outside")
		for _, d := range []string{dir, outside} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		sentinel := filepath.Join(outside, "sentinel")
		if err := os.WriteFile(sentinel, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := snapshotTree(t, parent, dir)

		_ = applyLayer(dir, bytes.NewReader(data), unpackLimits{MaxFileSize: fuzzMaxFile})

		if after := snapshotTree(t, parent, dir); after != before {
			t.Fatalf("outside the layer changed:\nbefore %s\nafter  %s", before, after)
		}
		if b, err := os.ReadFile(sentinel); err != nil || string(b) != "keep" {
			t.Fatalf("sentinel = %q, %v", b, err)
		}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			switch fi.Mode().Type() {
			case fs.ModeDevice:
				t.Fatalf("block device %s", p)
			case fs.ModeDevice | fs.ModeCharDevice:
				if st.Rdev != 0 {
					t.Fatalf("character device %s (rdev %d)", p, st.Rdev)
				}
			case 0:
				if fi.Size() > fuzzMaxFile {
					t.Fatalf("%s is %d bytes, over the cap", p, fi.Size())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

const fuzzMaxFile = 64 << 10

// snapshotTree describes everything under root except skip: names, types,
// modes, owners, sizes and link counts.
func snapshotTree(t *testing.T, root, skip string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel + " " + fi.Mode().String() + " " + strconv.FormatInt(int64(st.Uid), 10) + ":" + strconv.FormatInt(int64(st.Gid), 10) +
			" size=" + strconv.FormatInt(fi.Size(), 10) + " nlink=" + strconv.FormatInt(int64(st.Nlink), 10) + "; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
