// The `mxgw` binary run as a process by the tests (tests/cli, tests/integration): arguments as
// given (no shell), standard output and error captured through files.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

extern char** environ;

namespace mxgw::test {

struct run_result {
  int exit_status = -1;  ///< -1 when the process did not exit normally
  std::string out;
  std::string err;
};

/// Runs the mxgw binary with `args`, standard output and error captured through files in `scratch`;
/// standard output goes to `stdout_to` instead when given (say /dev/full, where every write fails).
inline run_result run_mxgw(const std::vector<std::string>& args,
                           const std::filesystem::path& scratch,
                           const std::filesystem::path& stdout_to = {}) {
  const auto out_file = stdout_to.empty() ? scratch / "stdout.txt" : stdout_to;
  const auto err_file = scratch / "stderr.txt";
  std::vector<std::string> words = {mxgw_binary().string()};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) {
    argv.push_back(w.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  run_result result;
  if (spawned != 0) {
    ADD_FAILURE() << "cannot run " << argv[0];
    return result;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  }
  if (stdout_to.empty()) {
    result.out = read_file(out_file);
  }
  result.err = read_file(err_file);
  return result;
}

}  // namespace mxgw::test
