package raftstore

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Table names. Each table holds one object kind as immutable proto pointers:
// writers store fresh clones and never mutate what they read.
const (
	tableNodes    = "nodes"
	tableServices = "services"
	tableTasks    = "tasks"
	tableClusters = "clusters"

	indexID   = "id"
	indexName = "name"
	// indexService and indexNode name reads of tasks by service and by
	// node, which go through reference tables (see taskrefs.go).
	indexService = "service_id"
	indexNode    = "node_id"
)

// fieldIndex indexes objects by a string derived from them. Objects for which
// the function returns "" are left out of the index.
type fieldIndex func(obj any) string

var _ memdb.SingleIndexer = fieldIndex(nil)

func (f fieldIndex) FromObject(obj any) (bool, []byte, error) {
	v := f(obj)
	if v == "" {
		return false, nil, nil
	}
	return true, terminated(v), nil
}

// terminated is s with a NUL byte after it, in one allocation (every
// store write computes a key per index).
func terminated(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

func (f fieldIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("raftstore: index wants one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("raftstore: index argument must be a string, got %T", args[0])
	}
	return terminated(s), nil
}

// PrefixFromArgs lets callers look IDs up by prefix (memdb's "id_prefix").
func (f fieldIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	b, err := f.FromArgs(args...)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

func metaID(obj any) string {
	switch o := obj.(type) {
	case *minkepb.Node:
		return o.GetMeta().GetId()
	case *minkepb.Service:
		return o.GetMeta().GetId()
	case *minkepb.Task:
		return o.GetMeta().GetId()
	case *minkepb.Cluster:
		return o.GetMeta().GetId()
	case *minkepb.Network:
		return o.GetMeta().GetId()
	}
	return ""
}

func idIndex() *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: indexID, Unique: true, Indexer: fieldIndex(metaID)}
}

func schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableNodes: {Name: tableNodes, Indexes: map[string]*memdb.IndexSchema{indexID: idIndex()}},
		tableServices: {Name: tableServices, Indexes: map[string]*memdb.IndexSchema{
			indexID: idIndex(),
			// Service names are unique regardless of case.
			indexName: {Name: indexName, Unique: true, Indexer: fieldIndex(func(o any) string {
				return strings.ToLower(o.(*minkepb.Service).GetSpec().GetName())
			})},
		}},
		tableTasks: {Name: tableTasks, Indexes: map[string]*memdb.IndexSchema{
			indexID: idIndex(),
		}},
		tableClusters: {Name: tableClusters, Indexes: map[string]*memdb.IndexSchema{indexID: idIndex()}},
	}}
	addNetworkSchema(s)
	addTaskCountsSchema(s)
	addTaskRefsSchema(s)
	return s
}
