// A value that is replaced while the gateway runs: readers take the current immutable snapshot
// (a shared_ptr copy under a mutex held for nothing longer), a writer publishes a new one.
#pragma once

#include <memory>
#include <mutex>

namespace mxgw {

template <typename T>
class live {
 public:
  explicit live(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}

  std::shared_ptr<const T> get() const {
    std::lock_guard lock(mutex_);
    return value_;
  }

  void set(std::shared_ptr<const T> next) {
    std::lock_guard lock(mutex_);
    value_ = std::move(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;
};

}  // namespace mxgw
