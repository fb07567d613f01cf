// A gateway (or any child) a test starts must not outlive the test process: when a test aborts
// or ctest kills it at its timeout, no destructor runs, and a gateway left behind keeps its port
// and its files for the next test.
#include "tests/integration/child_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace mxgw::test {
namespace {

/// Gone, or a zombie nobody has reaped yet (this machine's init may not reap at once).
bool dead(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) {
    return true;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, name, state;
  stat >> pid_field >> name >> state;
  return !stat || state == "Z" || state == "X";
}

TEST(ChildProcess, DiesWhenTheTestProcessDiesWithoutCleaningUp) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t test_process = fork();  // stands in for a test process that aborts
  ASSERT_GE(test_process, 0);
  if (test_process == 0) {
    close(fds[0]);
    child_process child({"/bin/sleep", "600"});
    const pid_t pid = child.pid();
    const bool written = write(fds[1], &pid, sizeof pid) == static_cast<ssize_t>(sizeof pid);
    _exit(written ? 0 : 1);  // no destructor: the child is not killed by it
  }
  close(fds[1]);
  pid_t child = 0;
  const ssize_t got = read(fds[0], &child, sizeof child);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(test_process, &status, 0), test_process);
  ASSERT_EQ(got, static_cast<ssize_t>(sizeof child));
  ASSERT_GT(child, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!dead(child) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const bool gone = dead(child);
  if (!gone) {
    ::kill(child, SIGKILL);  // do not leave it behind either way
  }
  EXPECT_TRUE(gone) << "the child outlived the process that started it";
}

}  // namespace
}  // namespace mxgw::test
