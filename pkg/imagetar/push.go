package imagetar

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/minke-io/minke/pkg/registry"
)

// ParseName splits NAME[:TAG] into a repository and tag for the cluster
// registry. The tag defaults to "latest". A leading registry host (a first
// component with "." or ":", or "localhost") is dropped, and Docker Hub
// names are shortened the way docker shows them, so "alpine:3",
// "library/alpine:3" and "docker.io/library/alpine:3" are all repository
// "alpine", tag "3". Digest references (NAME@sha256:…) are refused: a push
// needs a tag. Errors wrap ErrInvalidName.
func ParseName(s string) (repo, tag string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: %q %s; want NAME[:TAG], e.g. demo:latest or team/web:v1", ErrInvalidName, s, why)
	}
	if s == "" {
		return "", "", bad("is empty")
	}
	if strings.Contains(s, "@") {
		return "", "", bad("is a digest reference")
	}
	repo, tag = s, "latest"
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		repo, tag = s[:i], s[i+1:]
	}
	if first, rest, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		repo = rest
		if first == "docker.io" || first == "index.docker.io" {
			if r, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(r, "/") {
				repo = r
			}
		}
	} else if r, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(r, "/") {
		repo = r
	}
	if err := registry.ValidateName(repo); err != nil {
		return "", "", bad(fmt.Sprintf("has an invalid repository: %v", err))
	}
	if err := registry.ValidateTag(tag); err != nil {
		return "", "", bad(fmt.Sprintf("has an invalid tag: %v", err))
	}
	return repo, tag, nil
}

// Push pushes img to the cluster registry at registryHost (host:port) over
// tr — registry.Transport with the pusher's certificate: TLS, never plain
// HTTP — as nameTag (NAME[:TAG], see ParseName) and returns the manifest
// digest. Blobs the registry already holds are not sent again.
func Push(ctx context.Context, registryHost string, tr http.RoundTripper, img v1.Image, nameTag string) (digest string, err error) {
	repo, tag, err := ParseName(nameTag)
	if err != nil {
		return "", err
	}
	ref, err := name.NewTag(registryHost + "/" + repo + ":" + tag)
	if err != nil {
		return "", fmt.Errorf("imagetar: registry address %q: %w", registryHost, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("imagetar: digest of %s: %w", nameTag, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
		return "", fmt.Errorf("imagetar: push %s to %s: %w", nameTag, registryHost, err)
	}
	return d.String(), nil
}

// Choose picks the image of file to push and the name to push it as, the
// way `swarmctl image push FILE [NAME[:TAG]]` does:
//
//   - one image, no nameTag: its recorded name (an error if it has none);
//   - one image and nameTag: that image, as nameTag;
//   - several images: nameTag is required and must equal (after ParseName)
//     one of the recorded names; the error lists the names found.
//
// Errors wrap ErrChoose or ErrInvalidName.
func Choose(file string, loaded []Loaded, nameTag string) (img v1.Image, pushAs string, err error) {
	if nameTag != "" {
		if _, _, err := ParseName(nameTag); err != nil {
			return nil, "", err
		}
	}
	names := make([]string, 0, len(loaded))
	for _, l := range loaded {
		if l.Name != "" {
			names = append(names, l.Name)
		}
	}
	switch {
	case len(loaded) == 0:
		return nil, "", fmt.Errorf("%w: %s holds no images", ErrChoose, file)
	case len(loaded) == 1 && nameTag != "":
		return loaded[0].Image, nameTag, nil
	case len(loaded) == 1 && loaded[0].Name == "":
		return nil, "", fmt.Errorf("%w: the image in %s has no name; give one as NAME[:TAG]", ErrChoose, file)
	case len(loaded) == 1:
		if _, _, err := ParseName(loaded[0].Name); err != nil {
			return nil, "", fmt.Errorf("%w: recorded in %s; give another as NAME[:TAG]", err, file)
		}
		return loaded[0].Image, loaded[0].Name, nil
	case nameTag == "":
		return nil, "", fmt.Errorf("%w: %s holds %d images (%s); say which with NAME[:TAG]", ErrChoose, file, len(loaded), strings.Join(names, ", "))
	}
	wantRepo, wantTag, _ := ParseName(nameTag)
	for _, l := range loaded {
		if r, t, err := ParseName(l.Name); err == nil && r == wantRepo && t == wantTag {
			return l.Image, nameTag, nil
		}
	}
	return nil, "", fmt.Errorf("%w: %s holds no image named %s (found: %s)", ErrChoose, file, nameTag, strings.Join(names, ", "))
}
