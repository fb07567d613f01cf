// Four-eyes release in the store, on every backend, plain and with encryption at rest
// (StoreRelease): held copies are stored but never claimed, are listed and read for
// administrators, are released by approvals of different actors or rejected, are taken back by a
// withdrawal, are left alone by retention and re-sealed by rekey; each decision is audited in its
// own transaction. Migration of files and schemas from before (SqliteRelease, PgRelease).
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"
#include "gateway/store/pg_store.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

// ---------------------------------------------------------------------------------------------
// A clock the test moves by hand, and a count of the store's "deliveries due" calls

class due_counter {
 public:
  void bump() {
    {
      const std::lock_guard lock(mutex_);
      ++calls_;
    }
    cv_.notify_all();
  }
  std::size_t calls() {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  /// Waits (bounded) until the store has called at least `n` times.
  bool wait_for_calls(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, wait_limit, [&] { return calls_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t calls_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Records and decisions

const std::string release_rule = "rule-four-eyes";

std::string body_of(int n) {
  return R"({"case":)" + std::to_string(n) + R"(,"family":"CANARY-BODY"})";
}

std::string payload_of(int n, const std::string& recipient) {
  return R"({"case":)" + std::to_string(n) + R"(,"to":")" + recipient + R"(","x":"CANARY-COPY"})";
}

/// A copy for `recipient` with a payload of its own, held by `hold` (empty: not held).
delivery_plan copy_for(int n, const std::string& recipient, const std::string& hold = {}) {
  delivery_plan plan{recipient, "explicit", payload_of(n, recipient), "[]"};
  plan.hold = hold;
  return plan;
}

/// A copy for `recipient` that is handed the message's body, held by `hold`.
delivery_plan body_copy_for(const std::string& recipient, const std::string& hold) {
  delivery_plan plan{recipient, "rule-1", "", "[]"};
  plan.payload_is_body = true;
  plan.hold = hold;
  return plan;
}

message_record record_of(int n, std::vector<delivery_plan> copies) {
  const std::string body = body_of(n);
  message_record record{
      make_id(n),        "kh-cnp", "victim.identification", "2026-11-22T04:38:47Z",
      fingerprint(body), body};
  record.deliveries = std::move(copies);
  return record;
}

/// An administrator's decision, with an audit entry whose event the store must replace.
release_request decision(int n, const std::string& recipient, const std::string& actor,
                         bool approve = true, std::size_t required = 2, std::string reason = {}) {
  release_request request;
  request.message_id = make_id(n);
  request.recipient = recipient;
  request.actor = actor;
  request.approve = approve;
  request.reason = std::move(reason);
  request.required = required;
  request.audit = {.event = "replaced-by-the-store",
                   .actor = actor,
                   .partner = recipient,
                   .message_id = make_id(n),
                   .details = {{"rule", release_rule}}};
  return request;
}

const recipient_status* recipient_of(std::optional<message_status>&& status,
                                     const std::string& who) = delete;
const recipient_status* recipient_of(const std::optional<message_status>& status,
                                     const std::string& who) {
  if (status) {
    for (const auto& r : status->recipients) {
      if (r.recipient == who) {
        return &r;
      }
    }
  }
  ADD_FAILURE() << "no recipient " << who;
  return nullptr;
}

// Not on a temporary: the pointer would outlive the list.
const queue_stat* stat_of(std::vector<queue_stat>&& stats, const std::string& who) = delete;
const queue_stat* stat_of(const std::vector<queue_stat>& stats, const std::string& who) {
  for (const auto& s : stats) {
    if (s.recipient == who) {
      return &s;
    }
  }
  ADD_FAILURE() << "no queue for " << who;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Every backend, plain and sealed

std::shared_ptr<const key_ring> ring_of(std::initializer_list<std::pair<const char*, int>> keys,
                                        const std::string& active) {
  auto ring = std::make_shared<key_ring>();
  for (const auto& [id, fill] : keys) {
    data_key key;
    key.id = id;
    key.bytes.fill(static_cast<unsigned char>(fill));
    ring->add(std::move(key));
  }
  ring->set_active(active);
  return ring;
}

class StoreRelease : public ::testing::TestWithParam<sealable_backend> {
 protected:
  void SetUp() override {
    if (const auto reason = unavailable_reason(GetParam().base); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
    raw_ = std::shared_ptr<message_store>(GetParam().base.open(dir_.path(), clock_.function()));
    store_ = GetParam().sealed ? encrypt_at_rest(raw_, ring_) : raw_;
    store_->on_deliveries_due([this] { due_.bump(); });
  }

  void TearDown() override {
    for (const auto& s : {second_, store_, raw_}) {
      if (s) {
        s->stop();
      }
    }
    second_.reset();
    store_.reset();
    raw_.reset();
    if (GetParam().base.cleanup && unavailable_reason(GetParam().base).empty()) {
      GetParam().base.cleanup(dir_.path());
    }
  }

  /// A second store object on the same database (another gateway instance).
  message_store& second_instance() {
    second_ = std::shared_ptr<message_store>(GetParam().base.open(dir_.path(), clock_.function()));
    return *second_;
  }

  accept_result accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    return wait_for(f, "accept");
  }

  std::optional<message_status> find(int n) {
    std::promise<std::optional<message_status>> p;
    auto f = p.get_future();
    store_->find(make_id(n), [&p](std::optional<message_status> s, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(s));
    });
    return wait_for(f, "find");
  }

  /// The state of message n's copy for `recipient` ("" when there is none).
  std::string state_of(int n, const std::string& recipient) {
    const auto status = find(n);
    const recipient_status* r = recipient_of(status, recipient);
    return r != nullptr ? r->state : "";
  }

  std::vector<delivery_job> claim(message_store* through = nullptr) {
    std::promise<std::vector<delivery_job>> p;
    auto f = p.get_future();
    (through != nullptr ? *through : *store_)
        .claim_due("worker", 100, 1min, {}, [&p](std::vector<delivery_job> jobs, bool ok) {
          EXPECT_TRUE(ok);
          p.set_value(std::move(jobs));
        });
    return wait_for(f, "claim");
  }

  bool report_delivered(const delivery_job& job) {
    attempt_report report{job.message_id, job.recipient, "worker", attempt_result::delivered};
    report.attempt = job.attempt;
    report.receipt = "{}";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(report), [&p](bool ok) { p.set_value(ok); });
    return wait_for(f, "report");
  }

  std::pair<release_result, bool> decide(release_request request,
                                         message_store* through = nullptr) {
    std::promise<std::pair<release_result, bool>> p;
    auto f = p.get_future();
    (through != nullptr ? *through : *store_)
        .decide_release(std::move(request), [&p](release_result r, bool ok) {
          p.set_value({std::move(r), ok});
        });
    return wait_for(f, "decide_release");
  }

  /// The outcome of a decision that must succeed.
  release_outcome outcome_of(release_request request) {
    auto [result, ok] = decide(std::move(request));
    EXPECT_TRUE(ok);
    return result.outcome;
  }

  std::vector<held_copy> held(std::size_t limit = 100) {
    std::promise<std::vector<held_copy>> p;
    auto f = p.get_future();
    store_->list_held(limit, [&p](std::vector<held_copy> copies, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(copies));
    });
    return wait_for(f, "list_held");
  }

  std::pair<std::optional<delivery_job>, bool> read(int n, const std::string& recipient,
                                                    message_store* through = nullptr) {
    std::promise<std::pair<std::optional<delivery_job>, bool>> p;
    auto f = p.get_future();
    (through != nullptr ? *through : *store_)
        .read_held(make_id(n), recipient, [&p](std::optional<delivery_job> job, bool ok) {
          p.set_value({std::move(job), ok});
        });
    return wait_for(f, "read_held");
  }

  std::vector<queue_stat> stats() {
    std::promise<std::vector<queue_stat>> p;
    auto f = p.get_future();
    store_->queue_stats([&p](std::vector<queue_stat> s, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(s));
    });
    return wait_for(f, "queue_stats");
  }

  std::vector<audit::audit_row> audit() {
    std::promise<std::vector<audit::audit_row>> p;
    auto f = p.get_future();
    store_->read_audit(0, 10000, [&p](std::vector<audit::audit_row> rows, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(rows));
    });
    return wait_for(f, "read_audit");
  }

  std::pair<purge_result, bool> purge(retention_cut cut) {
    std::promise<std::pair<purge_result, bool>> p;
    auto f = p.get_future();
    store_->purge(std::move(cut), [&p](purge_result r, bool ok) {
      p.set_value({std::move(r), ok});
    });
    return wait_for(f, "purge");
  }

  /// Every value the database holds, as stored (sealed when the backend is), read through the
  /// store underneath with a rewriter that changes nothing.
  std::vector<stored_value> stored_values() {
    std::vector<stored_value> out;
    std::string cursor;
    for (;;) {
      std::promise<rewrite_result> p;
      auto f = p.get_future();
      raw_->rewrite_values(
          cursor, 50,
          [&out](const stored_value& v) -> std::optional<std::string> {
            out.push_back(v);
            return std::nullopt;
          },
          [&p](rewrite_result r, bool ok) {
            EXPECT_TRUE(ok);
            p.set_value(std::move(r));
          });
      const rewrite_result r = wait_for(f, "rewrite_values");
      if (r.messages == 0) {
        return out;
      }
      cursor = r.last_id;
    }
  }

  /// The stored value of `field` of message n's copy for `recipient`, if the database has one.
  std::optional<std::string> stored(int n, const std::string& recipient, value_field field) {
    for (auto& v : stored_values()) {
      if (v.message_id == make_id(n) && v.recipient == recipient && v.field == field) {
        return std::move(v.bytes);
      }
    }
    return std::nullopt;
  }

  test::temp_dir dir_;
  manual_clock clock_;
  due_counter due_;
  std::shared_ptr<const key_ring> ring_ = ring_of({{"k1", 1}}, "k1");
  std::shared_ptr<message_store> raw_;    ///< the store underneath
  std::shared_ptr<message_store> store_;  ///< what the test uses (raw_ or its decorator)
  std::shared_ptr<message_store> second_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreRelease, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------------------------
// Held copies

TEST_P(StoreRelease, AHeldCopyIsNeverClaimedAndShowsAsHeld) {
  ASSERT_EQ(
      accept(record_of(1, {copy_for(1, "la-mps", release_rule), copy_for(1, "interpol")})).outcome,
      accept_outcome::stored);

  // Only the copy that is not held goes out, now or two days later.
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].recipient, "interpol");
  EXPECT_EQ(jobs[0].payload, payload_of(1, "interpol"));
  EXPECT_FALSE(jobs[0].released_at.has_value());  // never held
  ASSERT_TRUE(report_delivered(jobs[0]));
  clock_.advance(48h);
  EXPECT_TRUE(claim().empty());

  const auto status = find(1);
  ASSERT_TRUE(status);
  const recipient_status* la = recipient_of(status, "la-mps");
  ASSERT_NE(la, nullptr);
  EXPECT_EQ(la->state, "held");
  EXPECT_EQ(la->hold, release_rule);
  EXPECT_EQ(la->attempts, 0);
  EXPECT_FALSE(la->next_attempt_at.has_value());
  const recipient_status* interpol = recipient_of(status, "interpol");
  ASSERT_NE(interpol, nullptr);
  EXPECT_EQ(interpol->state, "delivered");
  EXPECT_EQ(interpol->hold, "");

  const auto queues = stats();
  const queue_stat* la_queue = stat_of(queues, "la-mps");
  ASSERT_NE(la_queue, nullptr);
  EXPECT_EQ(la_queue->held, 1U);
  EXPECT_EQ(la_queue->pending, 0U);
  EXPECT_EQ(la_queue->delivering, 0U);
  EXPECT_EQ(la_queue->rejected, 0U);
  EXPECT_EQ(la_queue->oldest_waiting, status->accepted_at);  // a held copy is waiting
  const queue_stat* interpol_queue = stat_of(queues, "interpol");
  ASSERT_NE(interpol_queue, nullptr);
  EXPECT_EQ(interpol_queue->held, 0U);
  EXPECT_EQ(interpol_queue->delivered, 1U);

  const auto copies = held();
  ASSERT_EQ(copies.size(), 1U);
  EXPECT_EQ(copies[0].message_id, make_id(1));
  EXPECT_EQ(copies[0].recipient, "la-mps");
  EXPECT_EQ(copies[0].sender, "kh-cnp");
  EXPECT_EQ(copies[0].type, "victim.identification");
  EXPECT_EQ(copies[0].accepted_at, status->accepted_at);
  EXPECT_EQ(copies[0].hold, release_rule);
  EXPECT_TRUE(copies[0].approvals.empty());
}

TEST_P(StoreRelease, HeldCopiesAreListedOldestMessageFirstAndBounded) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "th-dsi", release_rule),
                                 copy_for(1, "la-mps", release_rule)}))
                .outcome,
            accept_outcome::stored);
  clock_.advance(1s);
  ASSERT_EQ(accept(record_of(2, {copy_for(2, "interpol", "rule-other")})).outcome,
            accept_outcome::stored);
  clock_.advance(1s);
  ASSERT_EQ(accept(record_of(3, {copy_for(3, "la-mps")})).outcome, accept_outcome::stored);

  const auto copies = held();
  std::vector<std::pair<std::string, std::string>> listed;
  for (const auto& c : copies) {
    listed.emplace_back(c.message_id, c.recipient);
  }
  // Message 1's copies in the order of its plans, then message 2's; message 3 is not held.
  EXPECT_EQ(listed, (std::vector<std::pair<std::string, std::string>>{
                        {make_id(1), "th-dsi"}, {make_id(1), "la-mps"}, {make_id(2), "interpol"}}));
  ASSERT_EQ(copies.size(), 3U);
  EXPECT_EQ(copies[2].hold, "rule-other");
  EXPECT_EQ(held(2).size(), 2U);
}

TEST_P(StoreRelease, AnAcceptOfHeldCopiesOnlyMakesNothingDue) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule)})).outcome,
            accept_outcome::stored);
  // The next write is committed after the accept's callback would have run.
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:ana")), release_outcome::approved);
  EXPECT_EQ(due_.calls(), 0U);
  ASSERT_EQ(
      accept(record_of(2, {copy_for(2, "la-mps", release_rule), copy_for(2, "interpol")})).outcome,
      accept_outcome::stored);
  EXPECT_TRUE(due_.wait_for_calls(1));
}

// ---------------------------------------------------------------------------------------------
// Approvals and release

TEST_P(StoreRelease, OneApprovalKeepsTheCopyHeldAndTheSameActorAgainChangesNothing) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule)})).outcome,
            accept_outcome::stored);
  clock_.advance(1min);
  const std::string approved_at = format_rfc3339_ms(clock_.now());
  const std::size_t entries_before = audit().size();

  auto [first, first_ok] = decide(decision(1, "la-mps", "admin:ana"));
  ASSERT_TRUE(first_ok);
  EXPECT_EQ(first.outcome, release_outcome::approved);
  ASSERT_EQ(first.approvals.size(), 1U);
  EXPECT_EQ(first.approvals[0].by, "admin:ana");
  EXPECT_EQ(first.approvals[0].at, approved_at);
  EXPECT_TRUE(claim().empty());
  EXPECT_EQ(state_of(1, "la-mps"), "held");
  const auto copies = held();
  ASSERT_EQ(copies.size(), 1U);
  ASSERT_EQ(copies[0].approvals.size(), 1U);
  EXPECT_EQ(copies[0].approvals[0].by, "admin:ana");
  EXPECT_EQ(copies[0].approvals[0].at, approved_at);

  const auto entries = audit();
  ASSERT_EQ(entries.size(), entries_before + 1);
  const audit::audit_row& entry = entries.back();
  EXPECT_EQ(entry.event, "release.approved");
  EXPECT_EQ(entry.actor, "admin:ana");
  EXPECT_EQ(entry.partner, "la-mps");
  EXPECT_EQ(entry.message_id, make_id(1));
  EXPECT_EQ(entry.at, approved_at);
  // The request's details, then the count the store appends.
  EXPECT_NE(entry.entry.find(R"("details":{"rule":")" + release_rule + R"(","approvals":"1/2"})"),
            std::string::npos)
      << entry.entry;

  clock_.advance(1min);
  auto [again, again_ok] = decide(decision(1, "la-mps", "admin:ana"));
  ASSERT_TRUE(again_ok);
  EXPECT_EQ(again.outcome, release_outcome::already_approved);
  ASSERT_EQ(again.approvals.size(), 1U);
  EXPECT_EQ(again.approvals[0].at, approved_at);  // the first approval, unchanged
  EXPECT_EQ(audit().size(), entries_before + 1);  // nothing appended
  ASSERT_EQ(held().at(0).approvals.size(), 1U);
  EXPECT_TRUE(claim().empty());
}

TEST_P(StoreRelease, ASecondActorReleasesTheCopyWhichIsThenClaimedWithItsReleaseTime) {
  const time_point accepted_at = clock_.now();
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule)})).outcome,
            accept_outcome::stored);
  clock_.advance(1h);
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:ana")), release_outcome::approved);
  EXPECT_EQ(due_.calls(), 0U);
  clock_.advance(47h);
  const time_point released_at = clock_.now();

  auto [result, ok] = decide(decision(1, "la-mps", "admin:ben"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.outcome, release_outcome::released);
  ASSERT_EQ(result.approvals.size(), 2U);
  EXPECT_EQ(result.approvals[0].by, "admin:ana");
  EXPECT_EQ(result.approvals[1].by, "admin:ben");
  EXPECT_EQ(result.approvals[1].at, format_rfc3339_ms(released_at));
  EXPECT_TRUE(due_.wait_for_calls(1)) << "a released copy is due: workers must be woken";

  const auto status = find(1);
  const recipient_status* la = recipient_of(status, "la-mps");
  ASSERT_NE(la, nullptr);
  EXPECT_EQ(la->state, "pending");
  EXPECT_EQ(la->attempts, 0);
  EXPECT_EQ(la->next_attempt_at, released_at);  // due at once
  EXPECT_EQ(la->hold, release_rule);            // still shows it was held
  EXPECT_TRUE(held().empty());
  const auto [unheld, unheld_ok] = read(1, "la-mps");
  EXPECT_TRUE(unheld_ok);
  EXPECT_FALSE(unheld.has_value());
  const auto queues = stats();
  const queue_stat* queue = stat_of(queues, "la-mps");
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->held, 0U);
  EXPECT_EQ(queue->pending, 1U);

  const auto entries = audit();
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().event, "release.released");
  EXPECT_EQ(entries.back().actor, "admin:ben");
  EXPECT_NE(entries.back().entry.find(R"("approvals":"2/2")"), std::string::npos);

  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].recipient, "la-mps");
  EXPECT_EQ(jobs[0].payload, payload_of(1, "la-mps"));
  EXPECT_EQ(jobs[0].attempt, 1);
  EXPECT_EQ(jobs[0].accepted_at, accepted_at);
  EXPECT_EQ(jobs[0].released_at, released_at);
}

TEST_P(StoreRelease, OneRequiredApprovalReleasesAtOnceAndNoneCountsAsOne) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule),
                                 copy_for(1, "interpol", release_rule)}))
                .outcome,
            accept_outcome::stored);
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:ana", true, 1)), release_outcome::released);
  EXPECT_NE(audit().back().entry.find(R"("approvals":"1/1")"), std::string::npos);
  EXPECT_EQ(outcome_of(decision(1, "interpol", "admin:ana", true, 0)), release_outcome::released);
  EXPECT_NE(audit().back().entry.find(R"("approvals":"1/1")"), std::string::npos);
  EXPECT_EQ(claim().size(), 2U);
}

TEST_P(StoreRelease, ThreeRequiredApprovalsNeedThreeActors) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule)})).outcome,
            accept_outcome::stored);
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:ana", true, 3)), release_outcome::approved);
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:ben", true, 3)), release_outcome::approved);
  EXPECT_NE(audit().back().entry.find(R"("approvals":"2/3")"), std::string::npos);
  EXPECT_TRUE(claim().empty());
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:cy", true, 3)), release_outcome::released);
  EXPECT_EQ(claim().size(), 1U);
}

TEST_P(StoreRelease, ApprovalsAtTheSameTimeFromTwoInstancesAreBothCountedAndReleaseOnce) {
  message_store& other = second_instance();
  constexpr int messages = 12;
  for (int n = 1; n <= messages; ++n) {
    ASSERT_EQ(accept(record_of(n, {copy_for(n, "la-mps", release_rule)})).outcome,
              accept_outcome::stored);
  }
  // Each message: two actors approve at once, one through each instance.
  std::vector<std::future<std::pair<release_result, bool>>> answers;
  std::vector<std::promise<std::pair<release_result, bool>>> promises(2 * messages);
  for (int n = 1; n <= messages; ++n) {
    for (int side = 0; side < 2; ++side) {
      auto& p = promises[static_cast<std::size_t>(2 * (n - 1) + side)];
      answers.push_back(p.get_future());
      message_store& via = side == 0 ? *store_ : other;
      via.decide_release(decision(n, "la-mps", side == 0 ? "admin:ana" : "admin:ben"),
                         [&p](release_result r, bool ok) {
                           p.set_value({std::move(r), ok});
                         });
    }
  }
  for (int n = 1; n <= messages; ++n) {
    std::multiset<release_outcome> outcomes;
    for (int side = 0; side < 2; ++side) {
      auto [result, ok] = wait_for(answers[static_cast<std::size_t>(2 * (n - 1) + side)], "decide");
      EXPECT_TRUE(ok);
      outcomes.insert(result.outcome);
    }
    EXPECT_EQ(outcomes, (std::multiset<release_outcome>{release_outcome::approved,
                                                        release_outcome::released}))
        << n;
    EXPECT_EQ(state_of(n, "la-mps"), "pending") << n;
  }
  EXPECT_EQ(claim().size(), static_cast<std::size_t>(messages));

  // A third and a fourth actor at once on a copy one approval short: released once, and the
  // late one finds nothing held.
  ASSERT_EQ(accept(record_of(50, {copy_for(50, "la-mps", release_rule)})).outcome,
            accept_outcome::stored);
  ASSERT_EQ(outcome_of(decision(50, "la-mps", "admin:ana")), release_outcome::approved);
  std::promise<std::pair<release_result, bool>> p1;
  std::promise<std::pair<release_result, bool>> p2;
  auto f1 = p1.get_future();
  auto f2 = p2.get_future();
  store_->decide_release(decision(50, "la-mps", "admin:ben"), [&p1](release_result r, bool ok) {
    p1.set_value({std::move(r), ok});
  });
  other.decide_release(decision(50, "la-mps", "admin:cy"), [&p2](release_result r, bool ok) {
    p2.set_value({std::move(r), ok});
  });
  const auto r1 = wait_for(f1, "decide");
  const auto r2 = wait_for(f2, "decide");
  EXPECT_EQ((std::multiset<release_outcome>{r1.first.outcome, r2.first.outcome}),
            (std::multiset<release_outcome>{release_outcome::released, release_outcome::not_held}));
  std::size_t released_entries = 0;
  for (const auto& row : audit()) {
    released_entries += row.event == "release.released" && row.message_id == make_id(50) ? 1 : 0;
  }
  EXPECT_EQ(released_entries, 1U);
}

// ---------------------------------------------------------------------------------------------
// Rejection

TEST_P(StoreRelease, ARejectionEmptiesThePayloadAndKeepsTheReasonAsTheError) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule),
                                 copy_for(1, "interpol", release_rule)}))
                .outcome,
            accept_outcome::stored);
  ASSERT_EQ(outcome_of(decision(1, "la-mps", "admin:ana")), release_outcome::approved);
  ASSERT_TRUE(stored(1, "la-mps", value_field::payload).has_value());
  // Longer than a row keeps: cut to max_error_bytes.
  const std::string reason =
      "CANARY-REASON not releasable to this partner " + std::string(600, 'x');

  auto [result, ok] = decide(decision(1, "la-mps", "admin:ben", false, 2, reason));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.outcome, release_outcome::rejected);
  ASSERT_EQ(result.approvals.size(), 1U);  // the approvals given before, unchanged
  EXPECT_EQ(result.approvals[0].by, "admin:ana");

  const auto status = find(1);
  const recipient_status* la = recipient_of(status, "la-mps");
  ASSERT_NE(la, nullptr);
  EXPECT_EQ(la->state, "rejected");
  EXPECT_EQ(la->last_error, reason.substr(0, max_error_bytes));
  EXPECT_EQ(la->hold, release_rule);
  EXPECT_EQ(recipient_of(status, "interpol")->state, "held");  // the other copy is its own

  // The payload is gone from the database; the reason is kept (sealed when the backend seals).
  EXPECT_FALSE(stored(1, "la-mps", value_field::payload).has_value());
  EXPECT_TRUE(stored(1, "interpol", value_field::payload).has_value());
  const auto error = stored(1, "la-mps", value_field::error);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(is_sealed(*error), GetParam().sealed);
  EXPECT_EQ(error->find("CANARY-REASON") == std::string::npos, GetParam().sealed);

  const auto [gone, gone_ok] = read(1, "la-mps");
  EXPECT_TRUE(gone_ok);
  EXPECT_FALSE(gone.has_value());
  clock_.advance(24h);
  EXPECT_TRUE(claim().empty());
  const auto copies = held();
  ASSERT_EQ(copies.size(), 1U);
  EXPECT_EQ(copies[0].recipient, "interpol");
  const auto queues = stats();
  const queue_stat* queue = stat_of(queues, "la-mps");
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->rejected, 1U);
  EXPECT_EQ(queue->held, 0U);
  EXPECT_EQ(queue->pending, 0U);
  EXPECT_EQ(queue->oldest_waiting, "");

  const auto entries = audit();
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().event, "release.rejected");
  EXPECT_EQ(entries.back().actor, "admin:ben");
  EXPECT_NE(entries.back().entry.find(R"("approvals":"1/2")"), std::string::npos);

  // Decided for good: neither an approval nor a second rejection finds it.
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:cy")), release_outcome::not_held);
  EXPECT_EQ(outcome_of(decision(1, "la-mps", "admin:cy", false, 2, "again")),
            release_outcome::not_held);
  EXPECT_EQ(audit().size(), entries.size());
  EXPECT_EQ(state_of(1, "la-mps"), "rejected");
}

TEST_P(StoreRelease, ACopyOfTheBodyIsRejectedWithoutTouchingTheBody) {
  ASSERT_EQ(accept(record_of(1, {body_copy_for("interpol", release_rule), copy_for(1, "la-mps")}))
                .outcome,
            accept_outcome::stored);
  EXPECT_EQ(outcome_of(decision(1, "interpol", "admin:ana", false, 2, "no")),
            release_outcome::rejected);
  EXPECT_FALSE(stored(1, "interpol", value_field::payload).has_value());  // grant gone too
  EXPECT_TRUE(stored(1, "", value_field::body).has_value());
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].recipient, "la-mps");
}

// ---------------------------------------------------------------------------------------------
// Decisions that find nothing held

TEST_P(StoreRelease, DecisionsOnCopiesThatAreNotHeldChangeNothing) {
  ASSERT_EQ(
      accept(record_of(1, {copy_for(1, "la-mps"), copy_for(1, "interpol", release_rule)})).outcome,
      accept_outcome::stored);
  const std::size_t entries_before = audit().size();

  for (const bool approve : {true, false}) {
    for (const auto& [n, recipient] : std::vector<std::pair<int, std::string>>{
             {99, "la-mps"}, {1, "th-dsi"}, {1, "la-mps"}}) {  // unknown message, row, pending row
      auto [result, ok] = decide(decision(n, recipient, "admin:ana", approve, 2, "why"));
      EXPECT_TRUE(ok);
      EXPECT_EQ(result.outcome, release_outcome::not_held) << n << " " << recipient;
      EXPECT_TRUE(result.approvals.empty());
    }
  }
  const auto status = find(1);
  EXPECT_EQ(recipient_of(status, "la-mps")->state, "pending");
  EXPECT_EQ(recipient_of(status, "la-mps")->last_error, "");

  // A released copy is no longer held either.
  ASSERT_EQ(outcome_of(decision(1, "interpol", "admin:ana", true, 1)), release_outcome::released);
  EXPECT_EQ(outcome_of(decision(1, "interpol", "admin:ben")), release_outcome::not_held);
  EXPECT_EQ(outcome_of(decision(1, "interpol", "admin:ben", false, 2, "late")),
            release_outcome::not_held);
  EXPECT_EQ(state_of(1, "interpol"), "pending");
  EXPECT_EQ(audit().size(), entries_before + 1);  // the release only
  EXPECT_EQ(claim().size(), 2U);
}

// ---------------------------------------------------------------------------------------------
// Reading a held copy

TEST_P(StoreRelease, ReadHeldHandsOutWhatAClaimWouldWithoutClaimingAnything) {
  const time_point accepted_at = clock_.now();
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule),
                                 body_copy_for("interpol", release_rule)}))
                .outcome,
            accept_outcome::stored);

  const auto [own, own_ok] = read(1, "la-mps");
  ASSERT_TRUE(own_ok);
  ASSERT_TRUE(own.has_value());
  EXPECT_EQ(own->message_id, make_id(1));
  EXPECT_EQ(own->recipient, "la-mps");
  EXPECT_EQ(own->sender, "kh-cnp");
  EXPECT_EQ(own->type, "victim.identification");
  EXPECT_EQ(own->payload, payload_of(1, "la-mps"));  // opened on a sealed backend
  EXPECT_EQ(own->attempt, 0);
  EXPECT_FALSE(own->payload_is_body);
  EXPECT_EQ(own->accepted_at, accepted_at);
  EXPECT_FALSE(own->released_at.has_value());

  const auto [body, body_ok] = read(1, "interpol");
  ASSERT_TRUE(body_ok);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->payload, body_of(1));
  EXPECT_TRUE(body->payload_is_body);
  EXPECT_EQ(body->attempt, 0);

  // The store underneath holds what the backend stores: sealed bytes when it seals.
  const auto [raw, raw_ok] = read(1, "la-mps", raw_.get());
  ASSERT_TRUE(raw_ok && raw.has_value());
  EXPECT_EQ(is_sealed(raw->payload), GetParam().sealed);

  // Nothing changed: still held, never attempted, readable again.
  const auto status = find(1);
  EXPECT_EQ(recipient_of(status, "la-mps")->state, "held");
  EXPECT_EQ(recipient_of(status, "la-mps")->attempts, 0);
  EXPECT_EQ(read(1, "la-mps").first.value_or(delivery_job{}).payload, payload_of(1, "la-mps"));
  EXPECT_TRUE(claim().empty());

  // No held copy: unknown message or recipient, or a copy that is not held.
  ASSERT_EQ(accept(record_of(2, {copy_for(2, "la-mps")})).outcome, accept_outcome::stored);
  for (const auto& [n, recipient] :
       std::vector<std::pair<int, std::string>>{{99, "la-mps"}, {1, "th-dsi"}, {2, "la-mps"}}) {
    const auto [none, none_ok] = read(n, recipient);
    EXPECT_TRUE(none_ok);
    EXPECT_FALSE(none.has_value()) << n << " " << recipient;
  }
}

TEST_P(StoreRelease, ThroughEncryptionAHeldCopyIsShownOnlyWhenItOpens) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule)})).outcome,
            accept_outcome::stored);
  // A ring without the key it was sealed under: a sealed copy is not shown (administrators must
  // not decide on what they cannot read); one stored in clear (before encryption was turned on)
  // is shown as it is, as a claim would hand it out.
  auto other_key = encrypt_at_rest(raw_, ring_of({{"k9", 9}}, "k9"));
  const auto [job, ok] = read(1, "la-mps", other_key.get());
  if (GetParam().sealed) {
    EXPECT_FALSE(ok);
    EXPECT_FALSE(job.has_value());
  } else {
    EXPECT_TRUE(ok);
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->payload, payload_of(1, "la-mps"));
  }
  EXPECT_EQ(state_of(1, "la-mps"), "held");
}

// ---------------------------------------------------------------------------------------------
// Withdrawal, retention, rekey

TEST_P(StoreRelease, AWithdrawalTakesHeldCopiesBack) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule),
                                 body_copy_for("interpol", release_rule)}))
                .outcome,
            accept_outcome::stored);
  ASSERT_EQ(outcome_of(decision(1, "interpol", "admin:ana")), release_outcome::approved);

  message_record withdrawal = record_of(2, {});
  withdrawal.type = "case.status";
  withdrawal.withdraws = make_id(1);
  withdrawal.original_seen = true;
  ASSERT_EQ(accept(std::move(withdrawal)).outcome, accept_outcome::stored);

  EXPECT_EQ(state_of(1, "la-mps"), "withdrawn");
  EXPECT_EQ(state_of(1, "interpol"), "withdrawn");
  EXPECT_TRUE(held().empty());
  EXPECT_FALSE(read(1, "la-mps").first.has_value());
  EXPECT_EQ(outcome_of(decision(1, "interpol", "admin:ben")), release_outcome::not_held);
  EXPECT_FALSE(stored(1, "la-mps", value_field::payload).has_value());
  EXPECT_FALSE(stored(1, "interpol", value_field::payload).has_value());
  clock_.advance(24h);
  EXPECT_TRUE(claim().empty());
}

TEST_P(StoreRelease, RetentionNeverPurgesAHeldCopy) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule),
                                 body_copy_for("interpol", release_rule), copy_for(1, "th-dsi")}))
                .outcome,
            accept_outcome::stored);
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);
  ASSERT_TRUE(report_delivered(jobs[0]));
  clock_.advance(400 * 24h);

  const auto [purged, ok] = purge({.delivered_before = clock_.now(),
                                   .dead_before = clock_.now(),
                                   .max_rows = 1000,
                                   .actor = "gateway:test"});
  ASSERT_TRUE(ok);
  EXPECT_EQ(purged.payloads, 1U);  // the delivered copy's
  EXPECT_EQ(purged.bodies, 0U);    // a held copy of the body still needs it
  EXPECT_EQ(state_of(1, "la-mps"), "held");
  EXPECT_EQ(state_of(1, "interpol"), "held");
  EXPECT_EQ(read(1, "la-mps").first.value_or(delivery_job{}).payload, payload_of(1, "la-mps"));
  EXPECT_EQ(read(1, "interpol").first.value_or(delivery_job{}).payload, body_of(1));

  // Released a year later, both still deliver what was accepted.
  ASSERT_EQ(outcome_of(decision(1, "la-mps", "admin:ana", true, 1)), release_outcome::released);
  ASSERT_EQ(outcome_of(decision(1, "interpol", "admin:ana", true, 1)), release_outcome::released);
  std::map<std::string, std::string> payloads;
  for (const auto& job : claim()) {
    payloads[job.recipient] = job.payload;
  }
  EXPECT_EQ(payloads, (std::map<std::string, std::string>{{"interpol", body_of(1)},
                                                          {"la-mps", payload_of(1, "la-mps")}}));
}

TEST_P(StoreRelease, RekeyReachesTheHeldCopies) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule),
                                 body_copy_for("interpol", release_rule)}))
                .outcome,
            accept_outcome::stored);
  const auto both = ring_of({{"k1", 1}, {"k2", 2}}, "k2");
  const rekey_counts counts = rekey_store(*raw_, *both);
  ASSERT_TRUE(counts.complete);
  ASSERT_FALSE(counts.failed);

  // With only the new key, both held copies open (the payload and the body's grant re-sealed).
  auto new_key_only = encrypt_at_rest(raw_, ring_of({{"k2", 2}}, "k2"));
  const auto [own, own_ok] = read(1, "la-mps", new_key_only.get());
  ASSERT_TRUE(own_ok);
  ASSERT_TRUE(own.has_value());
  EXPECT_EQ(own->payload, payload_of(1, "la-mps"));
  const auto [body, body_ok] = read(1, "interpol", new_key_only.get());
  ASSERT_TRUE(body_ok);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->payload, body_of(1));
  const auto raw = stored(1, "la-mps", value_field::payload);
  ASSERT_TRUE(raw.has_value());
  EXPECT_TRUE(is_sealed(*raw));
  EXPECT_EQ(state_of(1, "la-mps"), "held");  // only the bytes changed
}

// ---------------------------------------------------------------------------------------------
// Migration

TEST(SqliteRelease, AVersion11FileIsMigratedAndItsRowsWereNeverHeld) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options;
  options.path = path;
  options.busy_timeout_ms = 60000;
  {
    sqlite_store store(options);
    std::promise<accept_result> p;
    store.accept(record_of(1, {copy_for(1, "la-mps")}),
                 [&p](accept_result r) { p.set_value(std::move(r)); });
    auto f = p.get_future();
    ASSERT_EQ(wait_for(f, "accept").outcome, accept_outcome::stored);
  }
  // Back to what version 11 left.
  raw_db(path).exec(R"sql(
    ALTER TABLE deliveries DROP COLUMN approvals_required;
    ALTER TABLE deliveries DROP COLUMN relies_on;
    DROP TABLE early_withdrawals; DROP TABLE person_keys;
    ALTER TABLE messages DROP COLUMN withdrawn_at;
    DROP INDEX deliveries_held;
    ALTER TABLE deliveries DROP COLUMN released_at;
    ALTER TABLE deliveries DROP COLUMN approvals;
    ALTER TABLE deliveries DROP COLUMN hold;
    DROP INDEX messages_expiring;
    ALTER TABLE messages DROP COLUMN expires_at;
    PRAGMA user_version = 11;
  )sql");
  constexpr const char* new_columns =
      "SELECT count(*) FROM pragma_table_info('deliveries') "
      "WHERE name IN ('hold', 'approvals', 'released_at')";
  ASSERT_EQ(raw_db(path).text(new_columns), "0");

  sqlite_store store(options);
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), "18");
  EXPECT_EQ(raw_db(path).text(new_columns), "3");
  EXPECT_EQ(raw_db(path).text("SELECT hold || '|' || approvals || '|' || "
                              "coalesce(released_at, 'null') FROM deliveries"),
            "|[]|null");
  EXPECT_EQ(raw_db(path).text("SELECT sql FROM sqlite_master WHERE name = 'deliveries_held'"),
            "CREATE INDEX deliveries_held ON deliveries (message_seq) WHERE state = 'held'");

  // The old row is an ordinary pending copy; a new held one is listed and not claimed.
  std::promise<accept_result> accepted;
  store.accept(record_of(2, {copy_for(2, "la-mps", release_rule)}),
               [&accepted](accept_result r) { accepted.set_value(std::move(r)); });
  auto af = accepted.get_future();
  ASSERT_EQ(wait_for(af, "accept").outcome, accept_outcome::stored);
  std::promise<std::vector<held_copy>> listed;
  store.list_held(10,
                  [&listed](std::vector<held_copy> c, bool) { listed.set_value(std::move(c)); });
  auto lf = listed.get_future();
  const auto copies = wait_for(lf, "list_held");
  ASSERT_EQ(copies.size(), 1U);
  EXPECT_EQ(copies[0].message_id, make_id(2));
  std::promise<std::vector<delivery_job>> claimed;
  store.claim_due("w", 10, 1min, {}, [&claimed](std::vector<delivery_job> jobs, bool) {
    claimed.set_value(std::move(jobs));
  });
  auto cf = claimed.get_future();
  const auto jobs = wait_for(cf, "claim");
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].message_id, make_id(1));
  EXPECT_FALSE(jobs[0].released_at.has_value());
}

TEST(PgRelease, AVersion7SchemaIsMigratedAndItsRowsWereNeverHeld) {
  if (pg_test_dsn().empty()) {
    GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
  }
  test::temp_dir dir;
  const pg_scratch_schema scratch(dir.path());
  const std::string& schema = scratch.name;
  const auto query = [&scratch](const std::string& sql) { return scratch.query(sql); };
  {
    auto store = open_postgres_store(pg_options_for(dir.path(), {}));
    std::promise<accept_result> p;
    store->accept(record_of(1, {copy_for(1, "la-mps")}),
                  [&p](accept_result r) { p.set_value(std::move(r)); });
    auto f = p.get_future();
    ASSERT_EQ(wait_for(f, "accept").outcome, accept_outcome::stored);
  }
  // Back to what version 7 left.
  query(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; "
      "DROP TABLE early_withdrawals; DROP TABLE person_keys; "
      "ALTER TABLE messages DROP COLUMN withdrawn_at; "
      "DROP INDEX deliveries_held; "
      "ALTER TABLE deliveries DROP COLUMN hold, DROP COLUMN approvals, DROP COLUMN released_at; "
      "ALTER TABLE messages DROP COLUMN expires_at; "
      "UPDATE mxgw_schema SET version = 7");
  constexpr const char* new_columns =
      "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
      "AND table_name = 'deliveries' AND column_name IN ('hold', 'approvals', 'released_at')";
  ASSERT_EQ(query(new_columns), "0");

  {
    auto store = open_postgres_store(pg_options_for(dir.path(), {}));
    EXPECT_EQ(query("SELECT version FROM mxgw_schema"), "14");
    EXPECT_EQ(query(new_columns), "3");
    EXPECT_EQ(query("SELECT hold || '|' || approvals || '|' || coalesce(released_at::text, 'null') "
                    "FROM deliveries"),
              "|[]|null");
    EXPECT_EQ(query("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexname = 'deliveries_held'"),
              "CREATE INDEX deliveries_held ON " + schema +
                  ".deliveries USING btree (rid) WHERE (state = 'held'::text)");

    std::promise<accept_result> accepted;
    store->accept(record_of(2, {copy_for(2, "la-mps", release_rule)}),
                  [&accepted](accept_result r) { accepted.set_value(std::move(r)); });
    auto af = accepted.get_future();
    ASSERT_EQ(wait_for(af, "accept").outcome, accept_outcome::stored);
    std::promise<std::vector<delivery_job>> claimed;
    store->claim_due("w", 10, 1min, {}, [&claimed](std::vector<delivery_job> jobs, bool) {
      claimed.set_value(std::move(jobs));
    });
    auto cf = claimed.get_future();
    const auto jobs = wait_for(cf, "claim");
    ASSERT_EQ(jobs.size(), 1U);
    EXPECT_EQ(jobs[0].message_id, make_id(1));
  }
}

}  // namespace
}  // namespace mxgw::store
