// Process counters for the admin listener's Prometheus endpoint. Labels are fixed codes chosen by
// our code (reasons, outcomes, listener names), never partner content.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace mxgw {

class metrics {
 public:
  /// Adds `delta` to counter `name` with `labels` (Prometheus label text without braces, e.g.
  /// `reason="unknown-partner"`, or empty). `name` must be a valid metric name.
  void add(std::string_view name, std::string_view labels = {}, std::uint64_t delta = 1);

  /// The current value (0 when never added), for tests.
  std::uint64_t value(std::string_view name, std::string_view labels = {}) const;

  /// Every counter in Prometheus text exposition format (# HELP from `help` when given).
  std::string render(const std::map<std::string, std::string, std::less<>>& help = {}) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, std::uint64_t, std::less<>>, std::less<>> counters_;
};

/// Escapes a label value for the exposition format (backslash, quote, newline).
std::string prometheus_label_value(std::string_view value);

}  // namespace mxgw
