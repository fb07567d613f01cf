// What the listener's per-address connection limit counts a client under.
#pragma once

#include <string>

namespace mxgw::net {

/// The key under which `listener.limits.max_connections_per_address` counts a connection from
/// `address` (as Asio prints a remote address): an IPv4 address itself (also when it comes as an
/// IPv4-mapped IPv6 address, `::ffff:a.b.c.d`), and for any other IPv6 address its /64 prefix
/// (`2001:db8:1:2::/64`), because one host usually holds a whole /64 and can take a new
/// address from it for every connection. A zone (`%eth0`) is left out. Anything else is its own
/// key.
std::string connection_count_key(const std::string& address);

}  // namespace mxgw::net
