// The retention sweep (see retention.hpp).
#include "gateway/store/retention.hpp"

#include <future>
#include <string>
#include <utility>

#include "gateway/common/log.hpp"

namespace mxgw::store {
namespace {
constexpr std::size_t batch_rows = 1000;
}

retention_sweeper::retention_sweeper(std::shared_ptr<message_store> store,
                                     retention_settings settings)
    : store_(std::move(store)), settings_(std::move(settings)) {
  thread_ = std::thread([this] { run(); });
}

retention_sweeper::~retention_sweeper() {
  stop();
}

void retention_sweeper::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

std::pair<purge_result, bool> retention_sweeper::sweep_now() {
  const auto now = settings_.clock ? settings_.clock() : std::chrono::system_clock::now();
  purge_result total;
  for (;;) {
    std::promise<std::pair<purge_result, bool>> done;
    auto answer = done.get_future();
    store_->purge({.delivered_before = now - settings_.delivered_after,
                   .dead_before = now - settings_.dead_after,
                   .max_rows = batch_rows,
                   .actor = settings_.actor,
                   .expired_before = now},
                  [&done](purge_result r, bool ok) {
                    done.set_value({r, ok});
                  });
    const auto [result, ok] = answer.get();
    if (!ok) {
      return {total, false};
    }
    total.payloads += result.payloads;
    total.bodies += result.bodies;
    total.expired += result.expired;
    if (result.payloads < batch_rows && result.bodies < batch_rows) {
      return {total, true};
    }
  }
}

void retention_sweeper::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    const auto [result, ok] = sweep_now();
    if (!ok) {
      log::warn({.event = "retention.sweep_failed", .reason = "store-unavailable"});
    } else if (result.payloads > 0 || result.bodies > 0) {
      std::string detail = std::to_string(result.payloads) + " payloads, " +
                           std::to_string(result.bodies) + " bodies";
      if (result.expired > 0) {
        detail += " (" + std::to_string(result.expired) + " of them expired)";
      }
      log::info({.event = "retention.purged", .detail = std::move(detail)});
    }
    lock.lock();
    wake_.wait_for(lock, settings_.interval, [this] { return stopping_; });
  }
}

}  // namespace mxgw::store
