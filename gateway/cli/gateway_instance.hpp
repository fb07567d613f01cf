// One running gateway assembled from its configuration: store, checker, partners, listener.
// `mxgw serve` and the integration tests both use it.
#pragma once

#include <cstdint>
#include <memory>

#include "gateway/config/gateway_config.hpp"

namespace mxgw::delivery {
class delivery_service;
}
namespace mxgw::feed {
class feed_poller;
}

namespace mxgw::cli {

class gateway_instance {
 public:
  /// Loads partners, schemas and tables, opens the store and binds the listener. Throws
  /// std::runtime_error listing every configuration problem (file, field, reason).
  explicit gateway_instance(const config::gateway_config& config);
  ~gateway_instance();

  std::uint16_t port() const;

  /// Serves until stop(); then the store is flushed and closed.
  void run();

  /// Thread-safe and idempotent.
  void stop();

  /// The delivery workers (nullptr when delivery is disabled), for counters and circuit states.
  delivery::delivery_service* delivery() const;

  /// The notice feed poller (nullptr when no enabled partner has a feed), for its counters.
  feed::feed_poller* feeds() const;

 private:
  struct parts;
  std::unique_ptr<parts> parts_;
};

/// Formats configuration problems one per line: "FILE: FIELD: REASON".
std::string format_problems(const std::vector<config::config_problem>& problems);

}  // namespace mxgw::cli
