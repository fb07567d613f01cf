// What the Google Benchmark programs of bench/ share: where config/ is, reading a file, and the
// schemas and code tables loaded once, as the gateway does at start.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/pipeline/canonical_check.hpp"

namespace mxgw::bench {

inline std::filesystem::path source_dir() {
  if (const char* dir = std::getenv("MXGW_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return MXGW_SOURCE_DIR;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(path.string() + ": cannot read");
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Schemas and code tables, loaded once (as the gateway does at start).
inline const pipeline::canonical_checker& checker() {
  static const auto instance = [] {
    std::vector<pipeline::config_problem> problems;
    auto c = std::make_unique<pipeline::canonical_checker>(pipeline::canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    if (!problems.empty()) {
      throw std::runtime_error("config/schema or config/mappings has problems");
    }
    return c;
  }();
  return *instance;
}

}  // namespace mxgw::bench
