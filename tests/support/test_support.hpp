// Shared test helpers: temporary directories, file reading, paths of the source tree and binary.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace mxgw::test {

/// A fresh directory under the system temp dir, removed when the object goes out of scope.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& contents);

/// The lines of `text`, without their newlines (a command's output, a log).
std::vector<std::string> lines_of(const std::string& text);

/// The repository root (for config/schema, config/mappings and the example messages).
std::filesystem::path source_dir();

/// The built mxgw executable.
std::filesystem::path mxgw_binary();

/// Called in a forked child before exec: the child is killed when the test process dies, also
/// when the test aborts or ctest kills it at its timeout (no destructor runs then, and a gateway
/// left running would hold its port and its files). `parent` is getpid() taken before the fork.
/// Only async-signal-safe calls; a child whose parent is already gone exits at once.
void die_with_parent(int parent);

}  // namespace mxgw::test
