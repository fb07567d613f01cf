// A child process (the real `mxgw` binary) whose standard error a test reads line by line.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

namespace mxgw::test {

// A child process whose standard error we read line by line.
class child_process {
 public:
  explicit child_process(const std::vector<std::string>& args) {
    // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
    std::vector<char*> argv;
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) {
      throw std::runtime_error("pipe failed");
    }
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      die_with_parent(parent);
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    stderr_ = fdopen(fds[0], "r");
  }
  ~child_process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stderr_ != nullptr) {
      fclose(stderr_);
    }
  }

  /// Reads lines until one contains `needle` (returns it) or the child closes stderr ("").
  std::string wait_for_line(const std::string& needle) {
    char line[4096];
    while (fgets(line, sizeof line, stderr_) != nullptr) {
      if (std::string(line).find(needle) != std::string::npos) {
        return line;
      }
    }
    return {};
  }

  void signal(int sig) { kill(pid_, sig); }
  pid_t pid() const { return pid_; }

  /// Waits for exit; returns the exit status (or 128 + signal).
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  FILE* stderr_ = nullptr;
};

}  // namespace mxgw::test
