// Backoff, limits and circuit breakers (see retry_policy.hpp).
#include "gateway/delivery/retry_policy.hpp"

#include <algorithm>

namespace mxgw::delivery {

failure_kind classify_status(int status) {
  if (status >= 200 && status < 300) {
    return failure_kind::none;
  }
  if (status == 0 || status == 408 || status == 429 || status >= 500) {
    return failure_kind::transient;
  }
  return failure_kind::permanent;
}

std::chrono::milliseconds backoff_delay(const retry_limits& limits, int attempt,
                                        std::mt19937_64& rng) {
  const int doublings = std::clamp(attempt - 1, 0, 40);
  const auto base = std::max<std::int64_t>(1, limits.backoff_base.count());
  const auto cap = std::max<std::int64_t>(base, limits.backoff_cap.count());
  // base * 2^doublings, saturating at the cap without overflow.
  std::int64_t ceiling = base;
  for (int i = 0; i < doublings && ceiling < cap; ++i) {
    ceiling *= 2;
  }
  ceiling = std::min(ceiling, cap);
  std::uniform_int_distribution<std::int64_t> jitter(0, ceiling);
  return std::chrono::milliseconds(jitter(rng));
}

std::optional<clock_type::time_point> next_attempt(const retry_limits& limits, int attempt,
                                                   clock_type::time_point accepted_at,
                                                   clock_type::time_point now,
                                                   std::mt19937_64& rng) {
  if (attempt >= limits.max_attempts) {
    return std::nullopt;
  }
  const auto when = now + backoff_delay(limits, attempt, rng);
  if (when - accepted_at > limits.max_age) {
    return std::nullopt;
  }
  return when;
}

circuit_breakers::circuit_breakers(int failure_threshold, std::chrono::milliseconds open_for,
                                   std::function<clock_type::time_point()> clock)
    : failure_threshold_(std::max(1, failure_threshold)),
      open_for_(open_for),
      clock_(std::move(clock)) {}

bool circuit_breakers::allow(std::string_view partner) {
  std::lock_guard lock(mutex_);
  auto& s = states_[std::string(partner)];
  if (!s.open_until) {
    return true;
  }
  if (clock_() < *s.open_until || s.probe_in_flight) {
    return false;
  }
  s.probe_in_flight = true;  // half-open: exactly one probe
  return true;
}

void circuit_breakers::record(std::string_view partner, failure_kind outcome) {
  std::lock_guard lock(mutex_);
  auto& s = states_[std::string(partner)];
  s.probe_in_flight = false;
  if (outcome == failure_kind::transient) {
    ++s.consecutive_failures;
    if (s.consecutive_failures >= failure_threshold_ || s.open_until) {
      s.open_until = clock_() + open_for_;
    }
    return;
  }
  // Delivered, or refused for a reason of the message itself: the partner is reachable.
  s.consecutive_failures = 0;
  s.open_until.reset();
}

bool circuit_breakers::blocked(std::string_view partner) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(partner);
  if (it == states_.end() || !it->second.open_until) {
    return false;
  }
  return clock_() < *it->second.open_until || it->second.probe_in_flight;
}

std::string circuit_breakers::state_of(std::string_view partner) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(partner);
  if (it == states_.end() || !it->second.open_until) {
    return "closed";
  }
  return clock_() < *it->second.open_until ? "open" : "half-open";
}

std::optional<clock_type::time_point> circuit_breakers::open_until(std::string_view partner) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(partner);
  if (it == states_.end()) {
    return std::nullopt;
  }
  return it->second.open_until;
}

}  // namespace mxgw::delivery
