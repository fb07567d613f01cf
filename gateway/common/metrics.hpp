// Process counters and latency histograms for the admin listener's Prometheus endpoint. Labels
// are fixed codes chosen by our code (reasons, outcomes, listener names, configured partner ids),
// never partner content.
#pragma once

#include <array>
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

  /// Upper bounds (seconds) of the latency histograms' buckets, from 1 ms to 10 s; a last
  /// bucket, +Inf, counts everything.
  static constexpr std::array<double, 13> latency_buckets_s = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};

  /// Records one duration of `seconds` (negative is taken as 0) in histogram `name` (a metric
  /// name ending in `_seconds`) with `labels` as in add().
  void observe(std::string_view name, std::string_view labels, double seconds);

  /// How many observations histogram `name` with `labels` holds, for tests.
  std::uint64_t observations(std::string_view name, std::string_view labels = {}) const;

  /// Every counter and histogram in Prometheus text exposition format (# HELP from `help` when
  /// given). Histograms have cumulative `_bucket{le=...}` series, `_sum` and `_count`.
  std::string render(const std::map<std::string, std::string, std::less<>>& help = {}) const;

 private:
  struct histogram {
    std::array<std::uint64_t, latency_buckets_s.size()> buckets{};  // not cumulative
    std::uint64_t count = 0;
    double sum = 0;
  };

  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, std::uint64_t, std::less<>>, std::less<>> counters_;
  std::map<std::string, std::map<std::string, histogram, std::less<>>, std::less<>> histograms_;
};

/// Escapes a label value for the exposition format (backslash, quote, newline).
std::string prometheus_label_value(std::string_view value);

}  // namespace mxgw
