// Delivery workers: claim due deliveries from the store, POST them to each recipient over mutual
// TLS, and record the outcome (delivered with its receipt, retry with backoff, or dead letter).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/delivery/partner_client.hpp"
#include "gateway/delivery/retry_policy.hpp"

namespace boost::asio {
class io_context;
}

namespace mxgw {
class metrics;
}

namespace mxgw::store {
class message_store;
}

namespace mxgw::delivery {

/// What the workers need to know about one recipient.
struct recipient_info {
  std::string endpoint;                           ///< https URL; empty: cannot be delivered to
  std::string content_type = "application/json";  ///< media type of the recipient's format
  std::chrono::milliseconds timeout{10000};
  retry_limits limits;
  std::size_t concurrency = 4;
  /// The data-sharing agreements the recipient holds now (identity::partner::agreements). A copy
  /// that relies on one it no longer holds (store::delivery_job::relies_on) is not sent.
  std::vector<std::string> agreements;
};

/// The time kept free at the end of a lease: what it takes from the claim's commit to the
/// attempt's start and from the attempt's end to its outcome's commit. A tenth of the lease, at
/// least 500 ms.
constexpr std::chrono::milliseconds lease_margin(std::chrono::milliseconds lease) {
  return std::max(std::chrono::milliseconds(500), lease / 10);
}

/// The longest an attempt may take under `lease` (lease less its margin; may be zero or less
/// for a lease under a second): an attempt that took longer would outlive its lease, the copy
/// would be claimed and sent again, and the late outcome ignored. A partner's timeout_ms must be
/// below it (checked at load and by the admin API); the workers bound every attempt by it too.
constexpr std::chrono::milliseconds longest_attempt(std::chrono::milliseconds lease) {
  return lease - lease_margin(lease);
}

struct delivery_options {
  client_identity identity;
  std::string owner = "mxgw";                     ///< lease owner name of this instance
  std::chrono::milliseconds lease{120000};        ///< a claimed delivery is retaken after this
  std::chrono::milliseconds poll_interval{1000};  ///< look for due retries at least this often
  std::size_t max_in_flight = 64;                 ///< deliveries in progress at once
  int breaker_failures = 5;                       ///< consecutive failures that open a circuit
  std::chrono::milliseconds breaker_open{30000};  ///< how long it stays open
  std::uint64_t seed = 0;                         ///< jitter seed (0: random)
  std::vector<std::string> recipients;  ///< every partner id that can receive (for their caps)
  /// When set, asked before every claim instead of `recipients`, so that a partner created or
  /// given an endpoint while the gateway runs is held to its concurrency at once.
  std::function<std::vector<std::string>()> current_recipients;
  /// Where each attempt's duration goes (mxgw_delivery_duration_seconds); none when null.
  std::shared_ptr<metrics> durations;
};

struct delivery_counters {
  std::uint64_t attempts = 0;
  std::uint64_t delivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t dead = 0;
};

class delivery_service {
 public:
  using lookup = std::function<std::optional<recipient_info>(std::string_view partner)>;

  /// Builds the client (throws std::runtime_error when the identity cannot be loaded).
  delivery_service(delivery_options options, std::shared_ptr<store::message_store> store,
                   lookup recipients);
  ~delivery_service();
  delivery_service(const delivery_service&) = delete;
  delivery_service& operator=(const delivery_service&) = delete;

  /// Starts the worker thread; deliveries begin at once.
  void start();

  /// Stops claiming, lets deliveries in flight finish (each bounded by its timeout) and joins.
  void stop();

  /// Looks for due deliveries now (the store calls this after committing new ones). Does
  /// nothing once stop() has begun.
  void wake();

  /// A callable that wakes this service while it exists and does nothing after it is stopped or
  /// destroyed: what the store's on_deliveries_due is given, since the store may outlive it and
  /// may call it from its writer thread at any time.
  std::function<void()> waker() const;

  delivery_counters counters() const;

  /// "closed", "open" or "half-open".
  std::string circuit_state(std::string_view partner) const;

  /// The partner endpoints' CRLs read anew; nothing changes (partner_client::read_crls).
  client_crls read_crls(const std::vector<std::filesystem::path>& files,
                        std::vector<identity::config_problem>& problems,
                        std::vector<std::string>& stale) const;
  /// Puts them in force for the connections made from now on (partner_client::put_in_force).
  void put_in_force(const client_crls& crls);

  struct impl;

 private:
  // The event loop is the service's own, not the state's: the handlers queued in it hold the
  // state, so an io_context inside it would keep itself alive when a handler is left in its queue
  // after the loop stopped. The destructor stops, drops the state, then destroys the io_context,
  // which destroys every handler still in it and with them the last references to the state
  // (and to the store it holds).
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::shared_ptr<impl> impl_;
};

}  // namespace mxgw::delivery
