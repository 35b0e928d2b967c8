// Package attack sends hostile input to a real manager running in this
// test process on loopback: oversized and malformed gRPC messages to the
// Control API (unix socket) and the Dispatcher (TCP), and raw garbage on
// the gRPC port. Each must be refused with a clear error, leave the store
// unchanged and leave the manager serving. (Attacks on the gossip port are
// in pkg/membership's attack tests, next to the packet formats they forge.)
//
//	go test -race -count=1 ./test/attack/
package attack
