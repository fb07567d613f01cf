// The retention sweep: purges bodies and payloads past their time (metadata and audit stay).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/store/message_store.hpp"

namespace mxgw::store {

struct retention_settings {
  std::chrono::hours delivered_after{24 * 30};  ///< keep a delivered copy's bytes this long
  std::chrono::hours dead_after{24 * 90};       ///< keep a dead (or discarded) copy's bytes this long
  std::chrono::seconds interval{3600};          ///< sweep this often (and once at start)
  std::string actor = "gateway:mxgw";           ///< for the audit entry
  std::function<std::chrono::system_clock::time_point()> clock;  ///< empty: system clock
};

/// Runs purge() on its own thread every `interval` until stop(). One sweep purges in batches of
/// 1000 rows until nothing more is due, and takes the data of messages whose `handling.expires`
/// has ended (retention_cut::expired_before = now) whatever its age.
class retention_sweeper {
 public:
  retention_sweeper(std::shared_ptr<message_store> store, retention_settings settings);
  ~retention_sweeper();
  retention_sweeper(const retention_sweeper&) = delete;
  retention_sweeper& operator=(const retention_sweeper&) = delete;

  /// Runs one sweep now, on the calling thread; returns the totals (ok=false when the store failed).
  std::pair<purge_result, bool> sweep_now();

  /// Thread-safe and idempotent.
  void stop();

 private:
  void run();

  std::shared_ptr<message_store> store_;
  retention_settings settings_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mxgw::store
