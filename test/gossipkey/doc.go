// Package gossipkey tests gossip key rotation on a real cluster: three
// managers and two workers run in this test process on loopback addresses,
// the key is rotated through the Control API, and the test checks that the
// cluster never splits (no node goes DOWN, every manager keeps seeing every
// member), that every node ends up with only the new key, and that a node
// holding the old key is refused afterwards.
//
// The workers need root (their runtime sets up cgroup directories); the
// test skips otherwise.
//
//	go test -race -count=1 ./test/gossipkey/
package gossipkey
