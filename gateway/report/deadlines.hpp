// Case threads with deadlines: a verification request whose deadline day has ended without an
// answer is escalated (on the audit chain, in the log, in the metrics and in the admin API's list
// of open escalations), not forgotten; a late answer or a withdrawal closes the escalation.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/store/message_store.hpp"

namespace mxgw::report {

/// The state items of open escalations: kind "escalation", key the request's message id, value
/// {"messageId", "sender", "deadline", "escalatedAt"} (deleted when closed).
inline constexpr const char* escalation_kind = "escalation";

/// The state items of copies held for four-eyes release too long (docs/release.md): kind
/// "held-escalation", key "<message id>/<recipient>", value {"messageId", "recipient", "sender",
/// "heldBy", "heldSince", "escalatedAt"} (deleted when the copy is no longer held).
inline constexpr const char* held_escalation_kind = "held-escalation";

/// The most held copies one sweep looks at (oldest first); past it, none is closed that sweep.
inline constexpr std::size_t max_held_watched = 10'000;

struct deadline_settings {
  std::chrono::seconds interval{300};     ///< look this often (and once at start)
  std::chrono::hours lookback{24 * 180};  ///< requests accepted this long ago at most are watched
  /// A copy held for release this long after its message was accepted is escalated.
  std::chrono::hours held_after{24};
  std::string actor = "gateway:mxgw";     ///< for the audit entries
  std::function<std::chrono::system_clock::time_point()> clock;  ///< empty: system clock
};

struct deadline_sweep_result {
  std::size_t overdue = 0;    ///< requests past their deadline, unanswered, after this sweep
  std::size_t escalated = 0;  ///< of them, escalated by this sweep
  std::size_t closed = 0;     ///< escalations closed by this sweep (answered late or withdrawn)
  std::size_t held_overdue = 0;    ///< copies held longer than held_after, after this sweep
  std::size_t held_escalated = 0;  ///< of them, escalated by this sweep
  std::size_t held_closed = 0;     ///< held escalations closed (the copy is no longer held)
};

/// Watches the deadlines of verification requests, from the statistical facts the store keeps
/// (their `deadline`; the answers' `inReplyTo`; withdrawals' `about`). A request is overdue when
/// the UTC day of its deadline has ended at `now`, it is not answered by the report's rule
/// (case_threads::first_answer: a verification.result that names it, accepted after it, from one
/// of its recipients and not withdrawn by its own sender) and its sender has not withdrawn it.
/// Escalating is a put of the escalation item that applies only when none exists, with
/// `verification.overdue` on the audit chain in the same transaction, so several instances sharing
/// a store escalate each request once. Closing deletes the item, with
/// `verification.escalation_closed` (reason `answered` or `withdrawn`).
/// The same sweep escalates each copy held for four-eyes release longer than `held_after` once
/// (a held-escalation item with `release.overdue` on the audit chain, a warning in the log) and
/// closes the escalation (`release.escalation_closed`, reason `decided`) once the copy is no
/// longer held: released, rejected, withdrawn or expired.
class deadline_watch {
 public:
  deadline_watch(std::shared_ptr<store::message_store> store, deadline_settings settings);
  ~deadline_watch();
  deadline_watch(const deadline_watch&) = delete;
  deadline_watch& operator=(const deadline_watch&) = delete;

  /// Runs one sweep now, on the calling thread; ok=false when the store failed (what was done
  /// before the failure stays done; the next sweep goes on from there).
  std::pair<deadline_sweep_result, bool> sweep_now();

  /// The overdue count of the last sweep (0 before the first).
  std::size_t overdue() const;

  /// The count of copies held too long at the last sweep (0 before the first).
  std::size_t held_overdue() const;

  /// Thread-safe and idempotent.
  void stop();

  /// Starts the periodic sweeps on a thread of its own (not started by the constructor, so a
  /// test can sweep by hand).
  void start();

 private:
  void run();
  /// The held part of a sweep; false when the store failed.
  bool sweep_held(std::chrono::system_clock::time_point now, const std::string& now_text,
                  deadline_sweep_result& result);

  std::shared_ptr<store::message_store> store_;
  deadline_settings settings_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::size_t overdue_ = 0;
  std::size_t held_overdue_ = 0;
  std::thread thread_;
};

}  // namespace mxgw::report
