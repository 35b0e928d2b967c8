// Package regclient holds what the manager and the worker share when they
// talk to OCI / Docker registries: credentials from a docker config.json
// (Keychain), the mapping of registry failures to a few causes a user can
// act on (Classify), and resolving a tag to the digest of its manifest
// (Resolve).
//
// It builds on go-containerregistry, which already speaks the registry
// protocol: basic and bearer-token auth (the WWW-Authenticate challenge and
// the token exchange), schema2 and OCI manifests and indexes.
package regclient
