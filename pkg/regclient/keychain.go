package regclient

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Keychain returns the credentials source for registries.
//
// path names a docker config.json, or a directory holding one (as
// DOCKER_CONFIG does). When path is empty, $DOCKER_CONFIG/config.json is
// used if DOCKER_CONFIG is set, and otherwise go-containerregistry's
// default keychain ($HOME/.docker/config.json, then podman's auth.json).
//
// The file is read again on every look-up, so `docker login` on the node
// takes effect without a restart. "auths" entries, "credsStore" and
// "credHelpers" (docker-credential-* programs) are honoured; a registry
// without an entry is accessed anonymously.
func Keychain(path string) (authn.Keychain, error) {
	if path == "" {
		dir := os.Getenv("DOCKER_CONFIG")
		if dir == "" {
			return authn.DefaultKeychain, nil
		}
		path = dir
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, config.ConfigFileName)
	}
	k := fileKeychain{path: path}
	if _, err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// fileKeychain reads credentials from one docker config file.
type fileKeychain struct{ path string }

var _ authn.Keychain = fileKeychain{}

func (k fileKeychain) load() (*configfile.ConfigFile, error) {
	f, err := os.Open(k.path)
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", k.path, err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", k.path, err)
	}
	cf.Filename = k.path
	return cf, nil
}

// Resolve implements authn.Keychain.
func (k fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain. The look-up order is
// docker's: the repository, then the registry; Docker Hub is filed under
// its historical key https://index.docker.io/v1/.
func (k fileKeychain) ResolveContext(_ context.Context, target authn.Resource) (authn.Authenticator, error) {
	cf, err := k.load()
	if err != nil {
		return nil, err
	}
	var empty types.AuthConfig
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		cfg, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("registry config %s: credentials for %s: %w", k.path, key, err)
		}
		cfg.ServerAddress = ""
		if cfg == empty {
			continue
		}
		return authn.FromConfig(authn.AuthConfig{
			Username:      cfg.Username,
			Password:      cfg.Password,
			Auth:          cfg.Auth,
			IdentityToken: cfg.IdentityToken,
			RegistryToken: cfg.RegistryToken,
		}), nil
	}
	return authn.Anonymous, nil
}
