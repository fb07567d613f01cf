// One running gateway assembled from its configuration: store, checker, partners, listener.
// `mxgw serve` and the integration tests both use it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/config/gateway_config.hpp"

namespace mxgw::delivery {
class delivery_service;
struct client_identity;
}
namespace mxgw::feed {
class feed_poller;
}

namespace mxgw::report {
class deadline_watch;
}

namespace mxgw::cli {

/// What tests may change about a gateway beyond its configuration.
struct instance_options {
  /// The time that decides when a retiring certificate stops working and what the admin API
  /// calls "now" (rotation windows, expiry lists); empty: the system clock.
  std::function<std::chrono::system_clock::time_point()> clock;
};

class gateway_instance {
 public:
  /// Loads partners, schemas and tables, opens the store, applies the administrative changes
  /// persisted in it and binds the listeners (partner; admin when configured). Throws
  /// std::runtime_error listing every configuration problem (file, field, reason).
  explicit gateway_instance(const config::gateway_config& config, instance_options options = {});
  ~gateway_instance();

  std::uint16_t port() const;

  /// The admin listener's bound port; 0 when there is no admin listener.
  std::uint16_t admin_port() const;

  /// Serves until stop(); then the store is flushed and closed.
  void run();

  /// Thread-safe and idempotent.
  void stop();

  /// The delivery workers (nullptr when delivery is disabled), for counters and circuit states.
  delivery::delivery_service* delivery() const;

  /// Reloads code tables, schemas, transliteration rules, mapping files and both listeners' CRL
  /// files without a restart (SIGHUP, and later the admin API): everything is loaded and checked
  /// first, then swapped in; requests in flight keep the set they started with, handshakes from
  /// then on check the new CRLs, and open connections of certificates they list are closed. On
  /// any problem nothing changes and the
  /// problems (file and entry, no content) are logged and returned. Adding or removing a mapping
  /// file needs a restart (partners name adapters). Thread-safe; reloads run one at a time.
  /// `actor`: who asked, for the audit entry ("admin:<name>"); empty: "gateway:<instance>" (a
  /// signal).
  std::vector<config::config_problem> reload(const std::string& actor = {});

  /// The notice feed poller (nullptr when no enabled partner has a feed), for its counters.
  feed::feed_poller* feeds() const;

  /// The verification deadline watch (report::deadline_watch), for a sweep on demand (tests,
  /// operators' tools) besides the periodic ones.
  report::deadline_watch& deadlines() const;

 private:
  /// Appends one audit entry about a reload (not waited for; a failure is logged).
  void audit_reload(std::string event, const std::string& actor,
                    std::vector<std::pair<std::string, std::string>> details);

  struct parts;
  std::unique_ptr<parts> parts_;
};

/// The gateway's identity towards partner endpoints and feeds, and what it checks of theirs: the
/// `delivery` settings, each unset one defaulting to the listener's (the gateway is the same
/// party in both directions; the listener's CRLs only with the listener's anchors).
delivery::client_identity partner_client_identity(const config::gateway_config& config);

/// Formats configuration problems one per line: "FILE: FIELD: REASON".
std::string format_problems(const std::vector<config::config_problem>& problems);

}  // namespace mxgw::cli
