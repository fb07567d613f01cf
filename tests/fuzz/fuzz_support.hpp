// Helpers shared by the fuzz targets: the source tree, a per-process scratch dir, file writing.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::fuzz {

/// The repository root (config/schema, config/mappings), fixed at build time.
inline std::filesystem::path source_dir() {
  return MXGW_SOURCE_DIR;
}

/// A directory made once per process under the system temp dir and removed at exit.
class scratch_dir {
 public:
  scratch_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mxgw-fuzz-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = buffer.data();
  }
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Replaces `path` with exactly `size` bytes of `data`; aborts when the file cannot be written.
inline void write_bytes(const std::filesystem::path& path, const std::uint8_t* data,
                        std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

/// Aborts (loudly) when the trusted configuration a target depends on does not load cleanly.
inline void require_no_problems(const std::vector<identity::config_problem>& problems,
                                const char* what) {
  if (problems.empty()) {
    return;
  }
  for (const auto& problem : problems) {
    std::fprintf(stderr, "%s: %s %s: %s\n", what, problem.file.c_str(), problem.field.c_str(),
                 problem.reason.c_str());
  }
  std::abort();
}

}  // namespace mxgw::fuzz
