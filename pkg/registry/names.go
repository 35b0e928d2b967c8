package registry

import (
	"fmt"
	"regexp"
	"strings"
)

// maxNameLen bounds a repository name, as most registries do; the OCI spec
// leaves it open but names with a host must fit in 255 characters.
const maxNameLen = 255

var (
	// pathComponent is the distribution-spec repository name component:
	// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	sha256Hex     = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// ValidateName checks repo against the OCI repository name grammar: path
// components separated by "/", each lowercase alphanumerics joined by ".",
// "_", "__" or runs of "-". Errors wrap ErrInvalidName.
func ValidateName(repo string) error {
	if repo == "" || len(repo) > maxNameLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters", ErrInvalidName, repo, maxNameLen)
	}
	for _, c := range strings.Split(repo, "/") {
		if !pathComponent.MatchString(c) {
			return fmt.Errorf("%w: %q: each /-separated component must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*", ErrInvalidName, repo)
		}
	}
	return nil
}

// ValidateTag checks tag against [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
// Errors wrap ErrInvalidTag.
func ValidateTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return fmt.Errorf("%w: %q must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}", ErrInvalidTag, tag)
	}
	return nil
}

// parseDigest checks d is "sha256:<64 lowercase hex>" and returns the hex.
// Other algorithms are valid OCI but not supported here.
func parseDigest(d string) (hex string, err error) {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" || !sha256Hex.MatchString(hex) {
		return "", fmt.Errorf("%w: %q (want sha256:<64 lowercase hex digits>)", ErrInvalidDigest, d)
	}
	return hex, nil
}

// isDigest tells a digest reference from a tag: tags cannot contain ":".
func isDigest(ref string) bool { return strings.Contains(ref, ":") }
