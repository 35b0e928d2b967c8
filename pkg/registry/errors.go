package registry

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Sentinel errors returned by the store and by Resolve. The HTTP layer maps
// them to OCI distribution error codes (see codeFor).
var (
	// ErrInvalidName means a repository name does not match the OCI
	// distribution grammar (lowercase path components separated by "/").
	ErrInvalidName = errors.New("registry: invalid repository name")
	// ErrInvalidTag means a tag does not match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
	ErrInvalidTag = errors.New("registry: invalid tag")
	// ErrInvalidDigest means a digest is malformed or uses an algorithm
	// other than sha256.
	ErrInvalidDigest = errors.New("registry: invalid digest")
	// ErrDigestMismatch means uploaded content does not hash to the digest
	// the client claimed.
	ErrDigestMismatch = errors.New("registry: digest does not match content")
	// ErrBlobUnknown means no blob with that digest is stored.
	ErrBlobUnknown = errors.New("registry: blob unknown")
	// ErrManifestUnknown means the repository holds no manifest with that
	// tag or digest.
	ErrManifestUnknown = errors.New("registry: manifest unknown")
	// ErrManifestInvalid means a pushed manifest is not a JSON image
	// manifest or index of a supported media type.
	ErrManifestInvalid = errors.New("registry: manifest invalid")
	// ErrManifestBlobUnknown means a pushed manifest references a blob or
	// child manifest the registry does not hold.
	ErrManifestBlobUnknown = errors.New("registry: manifest references unknown blob")
	// ErrNameUnknown means the repository does not exist.
	ErrNameUnknown = errors.New("registry: repository unknown")
	// ErrUploadUnknown means the upload session does not exist (never
	// started, finished, cancelled or expired).
	ErrUploadUnknown = errors.New("registry: upload unknown")
	// ErrUploadInvalid means a chunk does not continue the upload where it
	// stopped (bad Content-Range) or the request is otherwise malformed.
	ErrUploadInvalid = errors.New("registry: upload invalid")
	// ErrRangeInvalid means a Content-Range does not start at the current
	// end of the upload.
	ErrRangeInvalid = errors.New("registry: content range not satisfiable")
	// ErrSizeInvalid means content is larger than allowed or disagrees with
	// its Content-Length.
	ErrSizeInvalid = errors.New("registry: size invalid")
	// ErrPaginationInvalid means the n parameter of a list is not a count.
	ErrPaginationInvalid = errors.New("registry: invalid pagination")
	// ErrNotFound means the request path is not an endpoint of the API
	// (for example the referrers API, which clients then work around).
	ErrNotFound = errors.New("registry: no such endpoint")
	// ErrReplication means a pushed image was stored here but could not be
	// copied to enough other managers to survive losing this one.
	ErrReplication = errors.New("registry: image not replicated to a majority of managers")
	// ErrUnsupported means the operation is valid OCI but not implemented.
	ErrUnsupported = errors.New("registry: operation unsupported")
	// ErrUnauthorized means the client presented no certificate, or one
	// that does not verify against the cluster's roots.
	ErrUnauthorized = errors.New("registry: authentication required")
	// ErrDenied means the client's certificate verifies, but it may not do
	// this (a worker pushing) or may no longer do anything (revoked).
	ErrDenied = errors.New("registry: access denied")
)

// OCI distribution error codes (distribution-spec, "Error Codes").
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeTagInvalid          = "TAG_INVALID"
	codeUnsupported         = "UNSUPPORTED"
	codeUnknown             = "UNKNOWN"
	codeUnavailable         = "UNAVAILABLE"
	codePaginationInvalid   = "PAGINATION_NUMBER_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
)

// codeFor maps an error to an OCI error code and HTTP status. Errors that
// are not one of the sentinels are internal: 500 UNKNOWN.
func codeFor(err error) (code string, status int) {
	switch {
	case errors.Is(err, ErrInvalidName):
		return codeNameInvalid, http.StatusBadRequest
	case errors.Is(err, ErrInvalidTag):
		return codeTagInvalid, http.StatusBadRequest
	case errors.Is(err, ErrInvalidDigest), errors.Is(err, ErrDigestMismatch):
		return codeDigestInvalid, http.StatusBadRequest
	case errors.Is(err, ErrBlobUnknown):
		return codeBlobUnknown, http.StatusNotFound
	case errors.Is(err, ErrManifestUnknown):
		return codeManifestUnknown, http.StatusNotFound
	case errors.Is(err, ErrManifestInvalid):
		return codeManifestInvalid, http.StatusBadRequest
	case errors.Is(err, ErrManifestBlobUnknown):
		return codeManifestBlobUnknown, http.StatusBadRequest
	case errors.Is(err, ErrNameUnknown):
		return codeNameUnknown, http.StatusNotFound
	case errors.Is(err, ErrUploadUnknown):
		return codeBlobUploadUnknown, http.StatusNotFound
	case errors.Is(err, ErrRangeInvalid):
		return codeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable
	case errors.Is(err, ErrUploadInvalid):
		return codeBlobUploadInvalid, http.StatusBadRequest
	case errors.Is(err, ErrSizeInvalid):
		return codeSizeInvalid, http.StatusBadRequest
	case errors.Is(err, ErrPaginationInvalid):
		return codePaginationInvalid, http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return codeUnsupported, http.StatusNotFound
	case errors.Is(err, ErrUnsupported):
		return codeUnsupported, http.StatusMethodNotAllowed
	case errors.Is(err, ErrUnauthorized):
		return codeUnauthorized, http.StatusUnauthorized
	case errors.Is(err, ErrDenied):
		return codeDenied, http.StatusForbidden
	case errors.Is(err, ErrReplication):
		return codeUnavailable, http.StatusServiceUnavailable
	default:
		return codeUnknown, http.StatusInternalServerError
	}
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type apiErrors struct {
	Errors []apiError `json:"errors"`
}

// writeError answers with the OCI error body for err. Internal errors are
// not described to the client beyond "internal error"; the caller logs them.
func writeError(w http.ResponseWriter, req *http.Request, err error) {
	code, status := codeFor(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	body, _ := json.Marshal(apiErrors{Errors: []apiError{{Code: code, Message: msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(int64(len(body))))
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
