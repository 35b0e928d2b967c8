// Package network gives a worker's containers their network: one bridge per
// worker with a subnet of its own, a veth pair and a named network namespace
// per container, NAT for outbound traffic, published ports, and routes to
// the other workers' container subnets.
//
// # Layout on a worker
//
//   - The bridge (the worker names it "minke-" and the start of its node
//     ID, so that nodes sharing a machine never share a bridge) holds the
//     subnet's first address as the containers' gateway. The subnet
//     defaults to 172.29.N.0/24, N the last byte of the node's address.
//   - Each container gets a network namespace bind-mounted at
//     STATE/netns/<container id>, created before the runtime starts the
//     container (the container's init joins it with setns), with lo up,
//     eth0 (the peer of a host-side veth "mk<hash>" enslaved to the bridge)
//     holding an address from the subnet, and a default route through the
//     gateway.
//   - One nftables table (ip family, named like the bridge) holds every
//     rule the worker needs; it is rewritten as a whole, atomically, in one
//     netlink batch whenever something changes, so a half-applied rule set
//     is never visible.
//
// # NAT and published ports
//
// Outbound traffic from the subnet that leaves through another link is
// masqueraded. A published port is a DNAT rule in the nat prerouting chain
// (and in the output chain, for clients on the node itself) matching packets
// addressed to any local address of the node. 127.0.0.1:PORT works too
// (route_localnet on the bridge, and a masquerade so that the container
// answers the gateway), but reaches only the node's own backends: a
// loopback-sourced packet cannot be routed to another node.
//
//   - mode=host: the port on the node running the task goes to that task.
//     The client's source address is kept, always.
//   - mode=ingress: the port on every node goes to any running, healthy task
//     of the service, on this node or another one (reached through the route
//     to that node's container subnet). The backend is chosen per connection
//     by `numgen inc mod N` looked up in a constant map of backend
//     addresses (round robin). A local backend sees the client's real source
//     address; a backend on another node sees the receiving node's address,
//     because the connection is masqueraded so that replies come back through
//     the node that did the DNAT (the node holds the conntrack entry). That
//     is the trade-off: keeping every source address would need the backend
//     nodes to route replies back through the ingress node (policy routing
//     or DSR), which plain routing cannot do. Clients that need their
//     address use mode=host.
//
// Connections from a container to a published port that land on a container
// of the same bridge (hairpin) are masqueraded too, so that replies do not
// bypass the DNAT.
//
// # Why nftables and not IPVS
//
// The machines minke targets may lack IPVS (CONFIG_IP_VS), while nf_tables
// with NAT, numgen and maps is everywhere; a numgen map gives per-connection
// round robin in the kernel with no per-packet user-space work, and the
// whole table is replaced atomically when backends change.
//
// # Cross-node routes
//
// Worker subnets must not overlap; each worker installs a route to every
// other worker's subnet through that worker's address (tagged with routing
// protocol 77 so that stale ones are found and removed). This is plain L3
// routing and needs the workers on one L2 segment or routable to each other.
//
// # Overlay networks
//
// Overlays (overlay_linux.go) gives containers a second link per
// user-defined overlay network: each network present on the node is a
// namespace of its own with a bridge and a VXLAN device (created in the
// node's namespace, so that its UDP socket stays there, then moved in),
// programmed with static neighbour and forwarding entries for every remote
// endpoint (MACs derived from addresses, ARP answered by the device, no
// learning, no flooding). Nothing links that namespace to the node or to
// another network, so networks are isolated by construction. A network's
// service VIPs are balanced in each attached container's own namespace
// (an nftables output-hook DNAT), so tasks see their clients' overlay
// addresses and replies return through the client's conntrack entry. See
// docs/networking.md.
package network
