package regclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Resolve returns the digest of the manifest ref names (for a multi-arch
// image, the index's digest, so that every node then picks its own
// platform from the same index). A digest reference is checked to exist.
// Errors are classified (see Classify) and name the reference.
//
// Resolve makes one attempt, without go-containerregistry's retries and
// their back-off (seconds): it runs while a user waits for an API call, and
// an unreachable registry must be reported at once.
func Resolve(ctx context.Context, ref name.Reference, keychain authn.Keychain, opts ...remote.Option) (v1.Hash, error) {
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	opts = append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
	}, opts...)
	desc, err := remote.Head(ref, opts...)
	if err == nil {
		return desc.Digest, nil
	}
	if c := Classify(err); errors.Is(c, ErrUnreachable) || ctx.Err() != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", ref, c)
	}
	// Some registries do not answer HEAD for manifests, and a HEAD answer
	// has no body to explain a refusal: ask again with GET.
	full, err := remote.Get(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", ref, Classify(err))
	}
	return full.Digest, nil
}
