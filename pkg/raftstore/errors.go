package raftstore

import "errors"

// Sentinel errors. Callers test them with errors.Is; the API edge maps them
// to gRPC codes.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("raftstore: not found")
	// ErrAmbiguous: a prefix matched more than one object.
	ErrAmbiguous = errors.New("raftstore: ambiguous reference")
	// ErrExist: an object with that ID or name already exists.
	ErrExist = errors.New("raftstore: already exists")
	// ErrNameConflict: another service already has that name.
	ErrNameConflict = errors.New("raftstore: name in use")
	// ErrAddressInUse: another live task or service holds the overlay
	// address on that network.
	ErrAddressInUse = errors.New("raftstore: address in use")
	// ErrConflict: the object would overlap another's resources (a
	// network's subnet or VNI).
	ErrConflict = errors.New("raftstore: conflicts with another object")
	// ErrSequenceConflict: the object changed since it was read; read again
	// and retry.
	ErrSequenceConflict = errors.New("raftstore: update out of sequence")
	// ErrInvalidObject: the object cannot be stored (no ID, unknown kind).
	ErrInvalidObject = errors.New("raftstore: invalid object")
	// ErrNotLeader: this node cannot commit writes; there is no way to know
	// whether a write that failed with it was applied.
	ErrNotLeader = errors.New("raftstore: not the leader")
	// ErrStopped: the node is shutting down.
	ErrStopped = errors.New("raftstore: stopped")
	// ErrNoState: an operation needs existing Raft state and there is none.
	ErrNoState = errors.New("raftstore: no cluster state")
	// ErrCorrupt: stored Raft data cannot be read.
	ErrCorrupt = errors.New("raftstore: corrupt raft data")
	// ErrHasState: the data dir already belongs to a cluster.
	ErrHasState = errors.New("raftstore: data dir already has cluster state")
)
