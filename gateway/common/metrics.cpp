// Counters and histograms in Prometheus text format (see metrics.hpp).
#include "gateway/common/metrics.hpp"

#include <algorithm>
#include <charconv>

namespace mxgw {
namespace {

// A number as Prometheus reads it, in its shortest exact form ("0.0025", "10", "1e-05").
std::string number_text(double value) {
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), result.ptr);
}

// `labels` with one more label appended.
std::string with_label(std::string_view labels, std::string_view extra) {
  std::string out(labels);
  if (!out.empty()) {
    out += ',';
  }
  out += extra;
  return out;
}

}  // namespace

void metrics::add(std::string_view name, std::string_view labels, std::uint64_t delta) {
  std::lock_guard lock(mutex_);
  auto family = counters_.find(name);
  if (family == counters_.end()) {
    family = counters_.emplace(std::string(name), decltype(counters_)::mapped_type{}).first;
  }
  auto counter = family->second.find(labels);
  if (counter == family->second.end()) {
    family->second.emplace(std::string(labels), delta);
  } else {
    counter->second += delta;
  }
}

std::uint64_t metrics::value(std::string_view name, std::string_view labels) const {
  std::lock_guard lock(mutex_);
  auto family = counters_.find(name);
  if (family == counters_.end()) {
    return 0;
  }
  auto counter = family->second.find(labels);
  return counter == family->second.end() ? 0 : counter->second;
}

void metrics::observe(std::string_view name, std::string_view labels, double seconds) {
  seconds = std::max(seconds, 0.0);
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(latency_buckets_s.begin(), latency_buckets_s.end(), seconds) -
      latency_buckets_s.begin());
  std::lock_guard lock(mutex_);
  auto family = histograms_.find(name);
  if (family == histograms_.end()) {
    family = histograms_.emplace(std::string(name), decltype(histograms_)::mapped_type{}).first;
  }
  auto series = family->second.find(labels);
  if (series == family->second.end()) {
    series = family->second.emplace(std::string(labels), histogram{}).first;
  }
  if (bucket < latency_buckets_s.size()) {
    ++series->second.buckets[bucket];
  }
  ++series->second.count;
  series->second.sum += seconds;
}

std::uint64_t metrics::observations(std::string_view name, std::string_view labels) const {
  std::lock_guard lock(mutex_);
  auto family = histograms_.find(name);
  if (family == histograms_.end()) {
    return 0;
  }
  auto series = family->second.find(labels);
  return series == family->second.end() ? 0 : series->second.count;
}

std::string metrics::render(const std::map<std::string, std::string, std::less<>>& help) const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, series] : counters_) {
    if (auto h = help.find(name); h != help.end()) {
      out += "# HELP " + name + " " + h->second + "\n";
    }
    out += "# TYPE " + name + " counter\n";
    for (const auto& [labels, value] : series) {
      out += name;
      if (!labels.empty()) {
        out += "{" + labels + "}";
      }
      out += " " + std::to_string(value) + "\n";
    }
  }
  for (const auto& [name, series] : histograms_) {
    if (auto h = help.find(name); h != help.end()) {
      out += "# HELP " + name + " " + h->second + "\n";
    }
    out += "# TYPE " + name + " histogram\n";
    for (const auto& [labels, hist] : series) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < latency_buckets_s.size(); ++i) {
        cumulative += hist.buckets[i];
        out += name + "_bucket{" +
               with_label(labels, "le=\"" + number_text(latency_buckets_s[i]) + "\"") + "} " +
               std::to_string(cumulative) + "\n";
      }
      out += name + "_bucket{" + with_label(labels, "le=\"+Inf\"") + "} " +
             std::to_string(hist.count) + "\n";
      const std::string braces = labels.empty() ? std::string() : "{" + labels + "}";
      out += name + "_sum" + braces + " " + number_text(hist.sum) + "\n";
      out += name + "_count" + braces + " " + std::to_string(hist.count) + "\n";
    }
  }
  return out;
}

std::string prometheus_label_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace mxgw
