// `mxgw serve` as a child process for the chaos tests (start, wait for log lines, SIGKILL,
// SIGTERM), and a SIGKILL fired from a thread of its own at a chosen moment.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.hpp"

namespace mxgw::test {

inline constexpr auto start_patience = std::chrono::seconds(15);  // gateway.started within this
inline constexpr auto exit_patience = std::chrono::seconds(20);   // SIGTERM'd gateway exits within

// `mxgw serve --config FILE` as a child process. A thread drains its standard error (so the
// child never blocks on a full pipe) and keeps the lines for wait_for_line() and diagnostics.
class gateway_process {
 public:
  explicit gateway_process(const std::filesystem::path& config) {
    // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
    std::vector<std::string> args{mxgw_binary().string(), "serve", "--config", config.string()};
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe2 failed");
    }
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      die_with_parent(parent);
      dup2(fds[1], STDERR_FILENO);  // the duplicate does not inherit O_CLOEXEC
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    if (pid_ < 0) {
      close(fds[0]);
      throw std::runtime_error("fork failed");
    }
    fd_ = fds[0];
    reader_ = std::thread([this] { drain(); });
  }

  ~gateway_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    reader_.join();
    close(fd_);
  }

  gateway_process(const gateway_process&) = delete;
  gateway_process& operator=(const gateway_process&) = delete;

  pid_t pid() const { return pid_; }

  /// The first line containing `needle`, or nullopt when stderr closed or `timeout` passed.
  std::optional<std::string> wait_for_line(const std::string& needle,
                                           std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    std::optional<std::string> found;
    changed_.wait_for(lock, timeout, [&] {
      for (const auto& line : lines_) {
        if (line.find(needle) != std::string::npos) {
          found = line;
          return true;
        }
      }
      return eof_;
    });
    return found;
  }

  /// The port from the "gateway.started ... listening on 127.0.0.1:PORT" line.
  std::uint16_t wait_started() {
    const auto line = wait_for_line("gateway.started", start_patience);
    std::smatch match;
    if (!line || !std::regex_search(*line, match, std::regex(R"(127\.0\.0\.1:([0-9]+))"))) {
      throw std::runtime_error("the gateway did not start; its log ends with:\n" + tail());
    }
    return static_cast<std::uint16_t>(std::stoi(match[1]));
  }

  /// Blocks until a new line arrives, stderr closes or `timeout` passes.
  void wait_for_output(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const auto seen = lines_.size();
    changed_.wait_for(lock, timeout, [&] { return lines_.size() != seen || eof_; });
  }

  /// Reaps the child after it was killed (SIGKILL cannot be ignored); its wait status.
  int reap() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  /// SIGTERM, then the exit code (or 128 + signal); nullopt when it did not exit in time.
  std::optional<int> terminate() {
    ::kill(pid_, SIGTERM);
    {
      // The child's stderr closes when it exits.
      std::unique_lock lock(mutex_);
      if (!changed_.wait_for(lock, exit_patience, [&] { return eof_; })) {
        return std::nullopt;
      }
    }
    const int status = reap();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  /// The last lines of the log, for failure messages.
  std::string tail(std::size_t count = 30) {
    std::lock_guard lock(mutex_);
    std::string out;
    for (auto i = lines_.size() > count ? lines_.size() - count : 0; i < lines_.size(); ++i) {
      out += lines_[i] + "\n";
    }
    return out;
  }

 private:
  void drain() {
    std::string partial;
    char buffer[4096];
    for (;;) {
      const auto n = read(fd_, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      std::lock_guard lock(mutex_);
      if (n <= 0) {
        if (!partial.empty()) {
          lines_.push_back(partial);
        }
        eof_ = true;
        changed_.notify_all();
        return;
      }
      partial.append(buffer, static_cast<std::size_t>(n));
      for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n')) {
        lines_.push_back(partial.substr(0, nl));
        partial.erase(0, nl + 1);
      }
      changed_.notify_all();
    }
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

// Sends SIGKILL to `pid` after `delay` from a thread of its own, so the kill lands at a random
// point of whatever the test thread is doing meanwhile. The pid stays valid: the child is reaped
// only after join().
class delayed_kill {
 public:
  delayed_kill(pid_t pid, std::chrono::microseconds delay)
      : thread_([this, pid, delay] {
          std::this_thread::sleep_for(delay);  // picks the moment; nothing waits on this
          // Set first: a request that failed while this is still false did not fail of the kill.
          fired_ = true;
          ::kill(pid, SIGKILL);
        }) {}
  ~delayed_kill() { thread_.join(); }
  delayed_kill(const delayed_kill&) = delete;
  delayed_kill& operator=(const delayed_kill&) = delete;

  bool fired() const { return fired_; }

 private:
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

}  // namespace mxgw::test
