package raftstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func TestCheckBoltSizeFindsTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	if err := checkBoltSize(path); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	s, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 200; i++ {
		if err := s.StoreLog(&raft.Log{Index: i, Term: 1, Data: make([]byte, 1024)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkBoltSize(path); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	if err := checkBoltSize(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("half-truncated file: %v, want ErrCorrupt", err)
	}
}
