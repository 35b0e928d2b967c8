// Package allocator hands out cluster-wide network resources kept in the
// Raft store. It is pure: callers pass what the store holds and commit the
// result in the same write transaction, so that the store's optimistic
// concurrency makes two allocations of one resource impossible.
//
// It allocates published ports and service VIPs on the default network,
// and for overlay networks their subnets, gateways and VNIs
// (AllocateNetwork), task addresses (AttachNetworks, when a task is
// created) and per-network service VIPs (AllocateServiceVIPs). The store
// itself refuses a commit that would give one address to two live holders
// or overlap two networks, so allocations racing in two writes cannot both
// land.
package allocator
