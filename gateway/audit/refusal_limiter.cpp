// Per-partner cap on refusal audit entries (see refusal_limiter.hpp).
#include "gateway/audit/refusal_limiter.hpp"

namespace mxgw::audit {

std::optional<std::uint64_t> refusal_limiter::admit(std::string_view partner,
                                                    clock::time_point now) {
  const std::lock_guard lock(mutex_);
  auto it = windows_.find(partner);
  if (it == windows_.end()) {
    it = windows_.emplace(std::string(partner), window{now, 0, 0}).first;
  }
  window& w = it->second;
  if (now - w.start >= std::chrono::minutes(1)) {
    w.start = now;
    w.recorded = 0;
  }
  if (w.recorded >= per_minute_) {
    ++w.suppressed;
    return std::nullopt;
  }
  ++w.recorded;
  const std::uint64_t suppressed = w.suppressed;
  w.suppressed = 0;
  return suppressed;
}

}  // namespace mxgw::audit
