// Package allocator hands out cluster-wide network resources kept in the
// Raft store. It is pure: callers pass what the store holds and commit the
// result in the same write transaction, so that the store's optimistic
// concurrency makes two allocations of one resource impossible.
//
// Today it allocates published ports; subnets, task addresses and service
// VIPs for overlay networks are not built yet.
package allocator
