// Package attack sends hostile input to a real manager running in this
// test process on loopback: oversized and malformed gRPC messages to the
// Control API (unix socket) and the Dispatcher (TCP), raw garbage on both
// gRPC endpoints, and packets sealed with the wrong key, unencrypted or
// garbage on the gossip port (UDP and TCP). Each must be refused with a
// clear error or log line, leave the store (and the member list) unchanged
// and leave the manager serving. pkg/membership's attack tests forge real
// memberlist messages and show the same message is accepted with the right
// key, so the refusals here come from the key check.
//
//	go test -race -count=1 ./test/attack/
package attack
