// When to try a failed delivery again: exponential backoff with full jitter, bounded by the
// partner's attempt and age limits; and a per-partner circuit breaker.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace mxgw::delivery {

using clock_type = std::chrono::system_clock;

/// A partner's delivery limits (from its definition).
struct retry_limits {
  int max_attempts = 12;
  std::chrono::seconds max_age{86400};
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{300000};
};

/// How one attempt ended, as far as retrying is concerned.
enum class failure_kind {
  none,       ///< delivered
  transient,  ///< 408, 429, 5xx, timeouts, connection and TLS errors
  permanent,  ///< other 4xx: the recipient refuses this message
};

/// Classifies an HTTP status (0 = no response: a transport failure).
failure_kind classify_status(int status);

/// Full-jitter exponential backoff: a uniformly random delay in [0, min(cap, base * 2^(n-1))]
/// after the n-th failed attempt (n >= 1).
std::chrono::milliseconds backoff_delay(const retry_limits& limits, int attempt,
                                        std::mt19937_64& rng);

/// The decision after a transient failure of attempt `attempt` of a message accepted at
/// `accepted_at`: a time to retry, or nullopt when the limits are reached (a dead letter).
std::optional<clock_type::time_point> next_attempt(const retry_limits& limits, int attempt,
                                                   clock_type::time_point accepted_at,
                                                   clock_type::time_point now,
                                                   std::mt19937_64& rng);

/// Per-partner circuit breakers. After `failure_threshold` consecutive transient failures a
/// partner's circuit opens for `open_for`: its deliveries wait instead of occupying workers while
/// healthy partners go on. Then one probe is let through (half-open); success closes the circuit,
/// failure opens it again. Thread-safe.
class circuit_breakers {
 public:
  circuit_breakers(int failure_threshold, std::chrono::milliseconds open_for,
                   std::function<clock_type::time_point()> clock = clock_type::now);

  /// May a delivery to `partner` start now? In the half-open state only one at a time may.
  bool allow(std::string_view partner);

  /// Records the outcome of a delivery that allow() let through.
  void record(std::string_view partner, failure_kind outcome);

  /// True while the partner's circuit is open (or half-open with its probe in flight).
  bool blocked(std::string_view partner);

  std::string state_of(std::string_view partner);  ///< "closed", "open", "half-open"

  /// When the partner's circuit may close (its probe may go): nullopt while it is closed.
  std::optional<clock_type::time_point> open_until(std::string_view partner);

 private:
  struct state {
    int consecutive_failures = 0;
    std::optional<clock_type::time_point> open_until;
    bool probe_in_flight = false;
  };
  int failure_threshold_;
  std::chrono::milliseconds open_for_;
  std::function<clock_type::time_point()> clock_;
  std::mutex mutex_;
  std::map<std::string, state, std::less<>> states_;
};

}  // namespace mxgw::delivery
