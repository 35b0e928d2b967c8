// Package network tests container networking end to end with the
// multi-host harness (internal/netharness): a manager and two workers,
// each in a network namespace of its own, running binaries built from this
// tree and the hello image (`hello -listen :80` answers HTTP with its
// hostname, which is its task ID). All traffic stays inside the test's
// namespaces: clients dial from a harness host with Host.Dial.
package network
