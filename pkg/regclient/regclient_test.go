package regclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestClassify(t *testing.T) {
	diag := func(status int, code transport.ErrorCode) error {
		return &transport.Error{StatusCode: status, Errors: []transport.Diagnostic{{Code: code, Message: "m"}}}
	}
	tests := []struct {
		name string
		err  error
		want error // nil: returned unchanged
	}{
		{"manifest unknown", diag(404, transport.ManifestUnknownErrorCode), ErrNotFound},
		{"name unknown", diag(404, transport.NameUnknownErrorCode), ErrNotFound},
		{"bare 404 (HEAD)", &transport.Error{StatusCode: 404}, ErrNotFound},
		{"unauthorized", diag(401, transport.UnauthorizedErrorCode), ErrUnauthorized},
		{"denied", diag(403, transport.DeniedErrorCode), ErrUnauthorized},
		{"bare 401", &transport.Error{StatusCode: 401}, ErrUnauthorized},
		{"server error", &transport.Error{StatusCode: 503}, ErrUnreachable},
		{"too many requests", &transport.Error{StatusCode: 429}, ErrUnreachable},
		{"connection refused", fmt.Errorf("Get: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), ErrUnreachable},
		{"dns", &net.DNSError{Err: "no such host", Name: "registry.invalid"}, ErrUnreachable},
		{"deadline", context.DeadlineExceeded, ErrUnreachable},
		{"platform", errors.New("no child with platform linux/amd64 in index x"), ErrNotFound},
		{"digest mismatch", errors.New(`error verifying sha256 checksum after reading 10 bytes; got "sha256:a", want "sha256:b"`), ErrCorrupt},
		{"https to http", errors.New("http: server gave HTTP response to HTTPS client"), ErrUnreachable},
		{"cancelled", context.Canceled, nil},
		{"other", errors.New("boom"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err)
			if tc.want == nil {
				if got != tc.err {
					t.Fatalf("Classify(%v) = %v, want it unchanged", tc.err, got)
				}
				return
			}
			if !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
				t.Fatalf("Classify(%v) = %v, want %v wrapping the original", tc.err, got, tc.want)
			}
			if again := Classify(got); again != got {
				t.Fatalf("classifying twice changed %v to %v", got, again)
			}
		})
	}
}

func TestKeychain(t *testing.T) {
	dir := t.TempDir()
	auth := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }
	cfg := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "` + auth("hub", "h") + `"},
		"registry.example:5000": {"auth": "` + auth("reg", "r") + `"},
		"registry.example:5000/special/repo": {"auth": "` + auth("repo", "x") + `"}
	}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo     string
		wantUser string // "" anonymous
	}{
		{"nginx", "hub"},
		{"docker.io/library/nginx", "hub"},
		{"registry.example:5000/team/app", "reg"},
		{"registry.example:5000/special/repo", "repo"},
		{"other.example/app", ""},
	}
	check := func(t *testing.T, kc authn.Keychain) {
		for _, tc := range tests {
			repo, err := name.NewRepository(tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			a, err := kc.Resolve(repo)
			if err != nil {
				t.Fatal(err)
			}
			ac, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if ac.Username != tc.wantUser {
				t.Errorf("%s: user %q, want %q", tc.repo, ac.Username, tc.wantUser)
			}
		}
	}
	t.Run("directory", func(t *testing.T) {
		kc, err := Keychain(dir)
		if err != nil {
			t.Fatal(err)
		}
		check(t, kc)
	})
	t.Run("file", func(t *testing.T) {
		kc, err := Keychain(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		check(t, kc)
	})
	t.Run("DOCKER_CONFIG", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", dir)
		kc, err := Keychain("")
		if err != nil {
			t.Fatal(err)
		}
		check(t, kc)
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := Keychain(filepath.Join(dir, "nope.json")); err == nil {
			t.Fatal("no error for a missing registry config")
		}
	})
}
