package regclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Causes of a failed registry operation. Classify wraps an error with one
// of them; callers test with errors.Is.
var (
	// ErrNotFound: the registry answered, and has no such repository, tag
	// or digest (or no manifest for this node's platform).
	ErrNotFound = errors.New("image not found")
	// ErrUnauthorized: the registry refused the credentials, or requires
	// some and none are configured for it.
	ErrUnauthorized = errors.New("registry refused access")
	// ErrUnreachable: the registry could not be reached or did not answer
	// usefully (DNS, connection, TLS, timeout, 5xx). Trying again later
	// may succeed.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrCorrupt: a blob's content does not match its digest, or a layer
	// its diff id.
	ErrCorrupt = errors.New("image content does not match its digest")
)

// Classify wraps err with the cause it shows (one of the sentinels above)
// and a hint, keeping the original error in the chain. Errors of unknown
// cause, and context cancellation, are returned unchanged.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnauthorized) ||
		errors.Is(err, ErrUnreachable) || errors.Is(err, ErrCorrupt) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%w: %w", ErrNotFound, err)
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("%w (check the credentials in the registry config): %w", ErrUnauthorized, err)
			}
		}
		switch {
		case te.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w (check the credentials in the registry config): %w", ErrUnauthorized, err)
		case te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return err
	}
	var (
		netErr  net.Error
		opErr   *net.OpError
		dnsErr  *net.DNSError
		certErr *x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &opErr), errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	case errors.As(err, &certErr), errors.As(err, &hostErr):
		return fmt.Errorf("%w (TLS certificate not trusted; list the registry as insecure only if it serves plain HTTP): %w", ErrUnreachable, err)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no child with platform"):
		return fmt.Errorf("%w for this platform: %w", ErrNotFound, err)
	case strings.Contains(msg, "error verifying"): // go-containerregistry's digest and size checks
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w (it serves plain HTTP: list it as an insecure registry): %w", ErrUnreachable, err)
	}
	return err
}
