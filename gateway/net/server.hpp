// A listener: an asynchronous mutual-TLS HTTP/1.1 server (Boost.Beast). The partner and the admin
// listeners are two instances with different roles (who may connect, which routes answer).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <openssl/types.h>

#include "gateway/config/gateway_config.hpp"
#include "gateway/http/problem.hpp"
#include "gateway/net/tls_context.hpp"

namespace mxgw::http {
struct request;
}

namespace boost::asio {
class io_context;
}

namespace mxgw::net {

/// Who a verified client certificate belongs to, or why it gets no service.
struct authentication {
  std::string principal;    ///< partner id or admin name; empty when refused
  std::string refusal;      ///< stable reason code when refused ("unknown-partner", ...)
  std::string fingerprint;  ///< lower-case hex SHA-256 of the certificate
  std::string serial_hex;
};

/// The peer of one open connection, for closing connections after a revocation.
struct connected_peer {
  std::string principal;
  std::string fingerprint;
  std::string serial_hex;
};

/// What makes a listener the partner or the admin listener.
struct listener_role {
  std::string name = "partner";  ///< for logs and metrics; also the TLS session id context
  /// Decides on a client certificate that passed chain, validity, CRL and clientAuth checks,
  /// with the trust anchor its chain ended at (null when unknown). Called in the handshake
  /// (refusal = handshake failure), again once it completes, and on a kept-alive connection
  /// before a request once `trust_version` has changed. Must be thread-safe and quick.
  std::function<authentication(X509* leaf, X509* anchor)> authenticate;
  /// The version of the state `authenticate` decides on (the partner listener: the trust
  /// store's). A connection remembers the version its decision was made on and decides again
  /// before its next request once the version is another. Empty: the decision depends on the
  /// certificate alone (the admin listener), so only the certificate's validity is re-checked.
  std::function<std::uint64_t()> trust_version;
  /// Answers one request; `done` exactly once, from any thread. The request's `partner` member
  /// carries the principal.
  std::function<void(const http::request&, std::function<void(http::response)>)> handle;
  /// Called once per refused handshake with a reason code (metrics); may be empty.
  std::function<void(std::string_view reason)> on_handshake_refused;
};

/// Counters of what the listener cut off or refused (for tests now, metrics later).
struct listener_counters {
  std::uint64_t handshakes_failed = 0;
  std::uint64_t connections_refused = 0;  ///< over max_connections
  std::uint64_t timeouts = 0;             ///< handshake, header, body or write deadline passed
  std::uint64_t requests = 0;
  /// Requests refused on a kept-alive connection whose certificate expired or no longer names its
  /// principal (answered 403 certificate-not-accepted, then closed), and idle kept-alive
  /// connections closed for the same refusal when a CRL in force passed its nextUpdate.
  std::uint64_t peers_no_longer_accepted = 0;
  /// Connections closed because max_connection_lifetime_seconds had passed.
  std::uint64_t lifetimes_ended = 0;
};

class server {
 public:
  /// Binds the listener (address and port from `settings`; port 0 picks a free one) and builds
  /// the TLS context. Throws std::runtime_error on a bind or TLS set-up failure.
  server(const config::listener_settings& settings, std::size_t threads, listener_role role);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The bound port.
  std::uint16_t port() const;

  /// Runs the event loop on the configured number of threads and returns after stop() once every
  /// connection has finished its in-flight request. While it runs, each time a CRL in force
  /// passes its nextUpdate (or a newer one reaches its lastUpdate) the idle kept-alive connections
  /// are decided on as their next request would be, and those refused (`crl-expired`, ...) closed
  /// then, logged as `tls.client_refused`.
  void run();

  /// Stops accepting, closes idle connections, lets in-flight requests finish. Thread-safe and
  /// idempotent; also safe to call from a signal handler's completion (not from a raw signal).
  void stop();

  listener_counters counters() const;

  /// Closes at once every open connection whose peer matches `which` (a request in progress is
  /// cut off). Returns how many were closed. Thread-safe.
  std::size_t close_connections(const std::function<bool(const connected_peer&)>& which);

  /// After a change of the state `role.authenticate` decides on: decides again on every open
  /// connection whose principal was last decided on another `role.trust_version` than the current
  /// one, with its own certificate and anchor, exactly as the check before its next request would,
  /// and closes at once those refused or now naming another principal ("principal-changed"),
  /// each logged as `tls.client_refused`. A connection still accepted is marked as decided on the
  /// current version. Returns how many were closed. Does nothing without `role.trust_version`.
  /// Thread-safe; while the version is unchanged it costs a comparison per connection.
  std::size_t close_connections_no_longer_accepted();

  /// Reads the CRL files anew for this listener (see net::prepare_verify_store); changes nothing.
  verify_store_update read_crls(const std::vector<std::filesystem::path>& files,
                                std::vector<config::config_problem>& problems,
                                std::vector<std::string>& stale) const;

  /// Puts renewed checks in force: every handshake from now on verifies against `update`'s store;
  /// one already under way is verified against it again as it completes, before its first
  /// request. An open connection whose certificate serial a new CRL lists, or whose chain a new
  /// CRL already past its nextUpdate covers, has its chain verified again against the new store
  /// now, as the check before its next request would, and is closed at once when refused
  /// (`certificate-revoked-crl`, `crl-expired`, ...), logged as `tls.client_refused`. Any other
  /// refusal by the new store (its issuer left without a CRL) comes at the connection's next
  /// request, which verifies against the store in force. Returns how many were closed.
  /// Thread-safe.
  std::size_t put_in_force(const verify_store_update& update);

  struct impl;

 private:
  // The event loop is the server's own, not the listener state's: the handlers queued in it hold
  // the connections and the listener, so an io_context inside them would keep itself alive. The
  // destructor drops the listener, then destroys the io_context, which destroys every handler
  // still in it (one posted after run() returned, or left by a loop that never ran) and with
  // them the last references to the connections and the listener.
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::shared_ptr<impl> impl_;
};

}  // namespace mxgw::net
