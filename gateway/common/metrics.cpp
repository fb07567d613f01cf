// Counters in Prometheus text format (see metrics.hpp).
#include "gateway/common/metrics.hpp"

namespace mxgw {

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
