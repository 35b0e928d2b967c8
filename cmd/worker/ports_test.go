package main

import (
	"testing"

	"github.com/minke-io/minke/pkg/manager"
)

// TestManagerDefaultPorts: the worker spells out the manager's default
// ports rather than linking the manager; they must stay the same.
func TestManagerDefaultPorts(t *testing.T) {
	if defaultGossipPort != manager.DefaultGossipPort || defaultManagerAPIPort != manager.DefaultAPIPort {
		t.Errorf("worker defaults gossip %d, API %d; the manager's are %d, %d",
			defaultGossipPort, defaultManagerAPIPort, manager.DefaultGossipPort, manager.DefaultAPIPort)
	}
}
