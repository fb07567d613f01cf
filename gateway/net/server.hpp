// The partner listener: an asynchronous mutual-TLS HTTP/1.1 server (Boost.Beast).
#pragma once

#include <cstdint>
#include <memory>

#include "gateway/config/gateway_config.hpp"

namespace mxgw::http {
class partner_api;
}
namespace mxgw::identity {
class partner_registry;
}

namespace mxgw::net {

/// Counters of what the listener cut off or refused (for tests now, metrics later).
struct listener_counters {
  std::uint64_t handshakes_failed = 0;
  std::uint64_t connections_refused = 0;  ///< over max_connections
  std::uint64_t timeouts = 0;             ///< handshake, header, body or write deadline passed
  std::uint64_t requests = 0;
};

class server {
 public:
  /// Binds the listener (address and port from `settings`; port 0 picks a free one) and builds
  /// the TLS context. Throws std::runtime_error on a bind or TLS set-up failure.
  server(const config::listener_settings& settings, std::size_t threads,
         std::shared_ptr<const identity::partner_registry> partners,
         std::shared_ptr<const http::partner_api> api);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The bound port.
  std::uint16_t port() const;

  /// Runs the event loop on the configured number of threads and returns after stop() once every
  /// connection has finished its in-flight request.
  void run();

  /// Stops accepting, closes idle connections, lets in-flight requests finish. Thread-safe and
  /// idempotent; also safe to call from a signal handler's completion (not from a raw signal).
  void stop();

  listener_counters counters() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mxgw::net
