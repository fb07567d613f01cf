// Bounds what refused requests can write to the audit chain: a partner sending a flood of garbage
// gets at most `per_minute` refusal entries a minute; the rest are counted, and the count rides on
// that partner's next recorded refusal, so the audit still says how many there were.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace mxgw::audit {

class refusal_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// `per_minute` >= 1 entries per partner in each one-minute window.
  explicit refusal_limiter(std::uint32_t per_minute) : per_minute_(per_minute) {}

  /// Whether the refusal of `partner` at `now` is recorded: nullopt when not (it is counted);
  /// otherwise how many of this partner's refusals were not recorded since its last recorded one.
  /// Thread-safe. Memory grows with the number of partners (authenticated ids), not requests.
  std::optional<std::uint64_t> admit(std::string_view partner,
                                     clock::time_point now = clock::now());

 private:
  struct window {
    clock::time_point start;
    std::uint32_t recorded = 0;
    std::uint64_t suppressed = 0;
  };
  std::uint32_t per_minute_;
  std::mutex mutex_;
  std::map<std::string, window, std::less<>> windows_;
};

}  // namespace mxgw::audit
