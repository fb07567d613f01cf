// The verification deadline watch on a real SQLite store: a request past its deadline day without
// an answer is escalated once (an escalation item and `verification.overdue` on the audit chain),
// however often and by however many watchers it is looked at; a request still within its deadline
// day, answered or withdrawn by its own sender is not; a late answer closes the escalation.
#include "gateway/report/deadlines.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

#include "gateway/common/time.hpp"
#include "gateway/report/collect.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::report {
namespace {

using store::test_helpers::make_id;

class DeadlineWatch : public ::testing::Test {
 protected:
  void SetUp() override {
    store::sqlite_options options;
    options.path = dir_ / "store.db";
    store_ = store::open_sqlite_store(options);
  }
  void TearDown() override { store_->stop(); }

  /// A watcher whose day is `today` (noon UTC).
  std::unique_ptr<deadline_watch> watcher(const std::string& today) {
    const auto at = *parse_rfc3339(today + "T12:00:00Z");
    return std::make_unique<deadline_watch>(
        store_, deadline_settings{.interval = std::chrono::seconds(3600),
                                  .lookback = std::chrono::hours(24 * 3650),
                                  .actor = "gateway:test",
                                  .clock = [at] { return at; }});
  }

  void accept(int n, const std::string& sender, const std::string& type,
              const std::string& facts) {
    store::message_record r{make_id(n), sender, type, "2026-02-01T00:00:00Z", "sha", "{}"};
    r.facts = facts;
    std::promise<store::accept_outcome> p;
    store_->accept(std::move(r), [&p](store::accept_result a) { p.set_value(a.outcome); });
    ASSERT_EQ(p.get_future().get(), store::accept_outcome::stored);
  }
  void request(int n, const std::string& deadline, const std::string& sender = "vn-gialai") {
    accept(n, sender, "verification.request",
           R"({"purpose":"nationality","urgency":"high","deadline":")" + deadline + R"("})");
  }
  void answer(int n, int request_n) {
    accept(n, "kh-ratanakiri", "verification.result",
           R"({"result":"confirmed","inReplyTo":")" + make_id(request_n) + R"("})");
  }
  void withdraw(int n, int message_n, const std::string& sender) {
    accept(n, sender, "case.status",
           R"({"status":"withdrawn","about":")" + make_id(message_n) + R"("})");
  }

  /// The audit entries of `event`: their message ids.
  std::vector<std::string> audited(const std::string& event) {
    std::promise<std::vector<audit::audit_row>> p;
    store_->read_audit(0, 1000,
                       [&p](std::vector<audit::audit_row> rows, bool) { p.set_value(rows); });
    std::vector<std::string> ids;
    for (const auto& row : p.get_future().get()) {
      if (row.event == event) {
        ids.push_back(row.message_id);
      }
    }
    return ids;
  }
  std::vector<std::string> open_escalations(const char* kind = escalation_kind) {
    std::promise<std::vector<store::state_item>> p;
    store_->list_state(kind, 0,
                       [&p](std::vector<store::state_item> items, bool) { p.set_value(items); });
    std::vector<std::string> keys;
    for (const auto& item : p.get_future().get()) {
      if (!item.value.empty()) {
        keys.push_back(item.key);
      }
    }
    std::sort(keys.begin(), keys.end());  // the store lists them in the order they were put
    return keys;
  }

  /// Message n from vn-gialai, with one copy for `recipient` held for four-eyes release.
  void hold(int n, const std::string& recipient) {
    store::message_record r{
        make_id(n), "vn-gialai", "victim.identification", "2026-02-01T00:00:00Z", "sha", "{}"};
    r.deliveries.push_back({.recipient = recipient,
                            .decided_by = "explicit",
                            .payload = "{}",
                            .hold = "secret-across-border"});
    std::promise<store::accept_outcome> p;
    store_->accept(std::move(r), [&p](store::accept_result a) { p.set_value(a.outcome); });
    ASSERT_EQ(p.get_future().get(), store::accept_outcome::stored);
  }
  /// A watcher whose clock says `at`, escalating copies held longer than `held_after`.
  std::unique_ptr<deadline_watch> held_watcher(
      std::chrono::system_clock::time_point at,
      std::chrono::hours held_after = std::chrono::hours(24)) {
    return std::make_unique<deadline_watch>(
        store_, deadline_settings{.interval = std::chrono::seconds(3600),
                                  .lookback = std::chrono::hours(24 * 3650),
                                  .held_after = held_after,
                                  .actor = "gateway:test",
                                  .clock = [at] { return at; }});
  }
  /// An administrator's decision on message n's copy for `recipient`.
  store::release_outcome decide(int n, const std::string& recipient, const std::string& admin,
                                bool approve) {
    std::promise<store::release_result> decided;
    store_->decide_release({.message_id = make_id(n),
                            .recipient = recipient,
                            .actor = admin,
                            .approve = approve,
                            .reason = approve ? "" : "not-necessary",
                            .required = 2,
                            .audit = {.actor = admin, .partner = recipient}},
                           [&decided](store::release_result r, bool) { decided.set_value(r); });
    return decided.get_future().get().outcome;
  }

  test::temp_dir dir_;
  std::shared_ptr<store::message_store> store_;
};

TEST_F(DeadlineWatch, AnOverdueRequestIsEscalatedOnceAndClosedByALateAnswer) {
  request(1, "2026-03-01");               // overdue on 2026-03-02
  request(2, "2026-03-01");               // answered in time
  answer(3, 2);
  request(4, "2026-03-02");               // its deadline day has not ended
  request(5, "2026-03-01");               // withdrawn by its sender
  withdraw(6, 5, "vn-gialai");
  request(7, "2026-03-01");               // "withdrawn" by someone else: still due
  withdraw(8, 7, "kh-ratanakiri");
  accept(9, "vn-gialai", "verification.request", "");  // no facts: cannot be watched

  auto watch = watcher("2026-03-02");
  auto [first, ok] = watch->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(first.overdue, 2U);
  EXPECT_EQ(first.escalated, 2U);
  EXPECT_EQ(watch->overdue(), 2U);
  EXPECT_EQ(audited("verification.overdue"), (std::vector<std::string>{make_id(1), make_id(7)}));
  EXPECT_EQ(open_escalations(), (std::vector<std::string>{make_id(1), make_id(7)}));

  // Looked at again, and by a second instance's watcher: nothing new on the record.
  auto [again, again_ok] = watch->sweep_now();
  ASSERT_TRUE(again_ok);
  EXPECT_EQ(again.overdue, 2U);
  EXPECT_EQ(again.escalated, 0U);
  EXPECT_EQ(watcher("2026-03-02")->sweep_now().first.escalated, 0U);
  EXPECT_EQ(audited("verification.overdue").size(), 2U);

  // The next day request 4 is overdue too; request 1 gets its answer late.
  answer(10, 1);
  auto [later, later_ok] = watcher("2026-03-03")->sweep_now();
  ASSERT_TRUE(later_ok);
  EXPECT_EQ(later.closed, 1U);
  EXPECT_EQ(later.escalated, 1U);
  EXPECT_EQ(later.overdue, 2U);  // 4 and 7
  EXPECT_EQ(audited("verification.escalation_closed"), (std::vector<std::string>{make_id(1)}));
  EXPECT_EQ(open_escalations(), (std::vector<std::string>{make_id(4), make_id(7)}));
}

TEST_F(DeadlineWatch, OnlyAnAnswerFromARecipientSettlesARequestThatNamesThem) {
  accept(1, "vn-gialai", "verification.request",
         R"({"purpose":"nationality","urgency":"high","deadline":"2026-03-01",)"
         R"("to":["kh-stungtreng"]})");
  answer(2, 1);  // from kh-ratanakiri, which was not asked
  accept(3, "vn-gialai", "verification.request",
         R"({"purpose":"nationality","urgency":"high","deadline":"2026-03-01",)"
         R"("to":["kh-ratanakiri","kh-stungtreng"]})");
  answer(4, 3);
  auto [first, ok] = watcher("2026-03-02")->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(first.escalated, 1U);
  EXPECT_EQ(open_escalations(), (std::vector<std::string>{make_id(1)}));

  // Another answer from the wrong partner closes nothing; Stung Treng's does.
  answer(5, 1);
  EXPECT_EQ(watcher("2026-03-03")->sweep_now().first.closed, 0U);
  accept(6, "kh-stungtreng", "verification.result",
         R"({"result":"confirmed","inReplyTo":")" + make_id(1) + R"("})");
  EXPECT_EQ(watcher("2026-03-03")->sweep_now().first.closed, 1U);
  EXPECT_TRUE(open_escalations().empty());
}

// An answer its own sender withdrew answers nothing, for the watch as in the report (one rule,
// case_threads): the request is escalated, and a late answer withdrawn in turn closes nothing.
TEST_F(DeadlineWatch, AnAnswerWithdrawnByItsSenderAnswersNothingAsInTheReport) {
  request(1, "2026-03-01");
  answer(2, 1);
  withdraw(3, 2, "kh-ratanakiri");  // the answer's own sender takes it back
  request(4, "2026-03-01");
  answer(5, 4);
  withdraw(6, 5, "vn-gialai");  // not the answer's sender: it stands
  auto [first, ok] = watcher("2026-03-02")->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(first.overdue, 1U);
  EXPECT_EQ(first.escalated, 1U);
  EXPECT_EQ(open_escalations(), (std::vector<std::string>{make_id(1)}));

  // The report over the same store says the same: one answered, one unanswered.
  std::promise<std::shared_ptr<statistics_builder>> collected;
  collect(store_, {"2026-01-01", "2099-12-31"},  // the store accepts them at its clock's time
          [&collected](std::shared_ptr<statistics_builder> b, collect_summary, bool done) {
            collected.set_value(done ? std::move(b) : nullptr);
          });
  const auto builder = collected.get_future().get();
  ASSERT_NE(builder, nullptr);
  rapidjson::Document figures;
  figures.Parse(builder->json(std::chrono::system_clock::now()).c_str());
  const auto& v = figures["verifications"];
  EXPECT_EQ(v["answered"].GetUint64(), 1U);
  EXPECT_EQ(v["unanswered"].GetUint64(), 1U);

  // A late answer withdrawn by its sender does not close the escalation.
  answer(7, 1);
  withdraw(8, 7, "kh-ratanakiri");
  auto [later, later_ok] = watcher("2026-03-03")->sweep_now();
  ASSERT_TRUE(later_ok);
  EXPECT_EQ(later.closed, 0U);
  EXPECT_EQ(later.overdue, 1U);
  EXPECT_EQ(open_escalations(), (std::vector<std::string>{make_id(1)}));
}

// Copies held for four-eyes release: one held longer than held_after is escalated once (however
// many watchers look), one held a shorter time is not, and the escalation closes once the copy is
// no longer held.
TEST_F(DeadlineWatch, ACopyHeldTooLongIsEscalatedOnceAndClosedWhenDecided) {
  const auto accepted = std::chrono::system_clock::now();
  hold(1, "kh-ratanakiri");
  hold(2, "kh-stungtreng");
  const auto open_held = [this] { return open_escalations(held_escalation_kind); };

  // Within the day: nothing.
  auto early = held_watcher(accepted + std::chrono::hours(23));
  EXPECT_EQ(early->sweep_now().first.held_overdue, 0U);
  EXPECT_TRUE(audited("release.overdue").empty());

  // A day and more: both escalated once, by the first of two watchers.
  auto late = held_watcher(accepted + std::chrono::hours(25));
  auto [first, ok] = late->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(first.held_overdue, 2U);
  EXPECT_EQ(first.held_escalated, 2U);
  EXPECT_EQ(late->held_overdue(), 2U);
  EXPECT_EQ(held_watcher(accepted + std::chrono::hours(26))->sweep_now().first.held_escalated, 0U);
  EXPECT_EQ(audited("release.overdue"), (std::vector<std::string>{make_id(1), make_id(2)}));
  EXPECT_EQ(open_held(), (std::vector<std::string>{make_id(1) + "/kh-ratanakiri",
                                                   make_id(2) + "/kh-stungtreng"}));

  // Refused: no longer held, so the next look closes its escalation; the other stays.
  ASSERT_EQ(decide(1, "kh-ratanakiri", "admin:alice", false), store::release_outcome::rejected);
  auto [after, after_ok] = late->sweep_now();
  ASSERT_TRUE(after_ok);
  EXPECT_EQ(after.held_closed, 1U);
  EXPECT_EQ(after.held_overdue, 1U);
  EXPECT_EQ(audited("release.escalation_closed"), (std::vector<std::string>{make_id(1)}));
  EXPECT_EQ(open_held(), (std::vector<std::string>{make_id(2) + "/kh-stungtreng"}));
}

TEST_F(DeadlineWatch, AHeldCopysEscalationClosesWhenItIsReleasedOrWithdrawn) {
  const auto accepted = std::chrono::system_clock::now();
  hold(1, "kh-ratanakiri");
  hold(2, "kh-stungtreng");
  auto watch = held_watcher(accepted + std::chrono::hours(25));
  ASSERT_EQ(watch->sweep_now().first.held_escalated, 2U);

  // Message 1's copy released by two administrators; message 2 withdrawn by its sender.
  ASSERT_EQ(decide(1, "kh-ratanakiri", "admin:alice", true), store::release_outcome::approved);
  ASSERT_EQ(decide(1, "kh-ratanakiri", "admin:bob", true), store::release_outcome::released);
  store::message_record withdrawal{make_id(3), "vn-gialai", "case.status", "2026-02-02T00:00:00Z",
                                   "sha",      "{}"};
  withdrawal.withdraws = make_id(2);
  withdrawal.original_seen = true;
  std::promise<store::accept_outcome> p;
  store_->accept(std::move(withdrawal), [&p](store::accept_result a) { p.set_value(a.outcome); });
  ASSERT_EQ(p.get_future().get(), store::accept_outcome::stored);

  auto [after, ok] = watch->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(after.held_closed, 2U);
  EXPECT_EQ(after.held_overdue, 0U);
  EXPECT_EQ(audited("release.escalation_closed"),
            (std::vector<std::string>{make_id(1), make_id(2)}));
  EXPECT_TRUE(open_escalations(held_escalation_kind).empty());
}

// Another instance closed the escalation while this one's list still showed the copy held (its
// release came in between): the copy is not escalated a second time.
TEST_F(DeadlineWatch, AClosedEscalationIsNeverOpenedAgainForTheSameCopy) {
  const auto accepted = std::chrono::system_clock::now();
  hold(1, "kh-ratanakiri");
  auto watch = held_watcher(accepted + std::chrono::hours(25));
  ASSERT_EQ(watch->sweep_now().first.held_escalated, 1U);
  std::promise<std::vector<store::state_item>> listed;
  store_->list_state(
      held_escalation_kind, 0,
      [&listed](std::vector<store::state_item> items, bool) { listed.set_value(items); });
  const auto items = listed.get_future().get();
  ASSERT_EQ(items.size(), 1U);
  std::promise<store::put_outcome> closed;
  store_->put_state({.kind = held_escalation_kind, .key = items[0].key, .value = {}},
                    items[0].version, {},
                    [&closed](store::put_outcome o, std::int64_t) { closed.set_value(o); });
  ASSERT_EQ(closed.get_future().get(), store::put_outcome::applied);

  auto [again, ok] = watch->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(again.held_escalated, 0U);
  EXPECT_EQ(audited("release.overdue").size(), 1U);
  EXPECT_TRUE(open_escalations(held_escalation_kind).empty());
}

// held_after_hours raised after a copy was escalated: its escalation stays open until the copy is
// decided, and the count (the metric) still includes it, as the admin list does.
TEST_F(DeadlineWatch, AnOpenEscalationIsStillCountedWhenTheThresholdIsRaised) {
  const auto accepted = std::chrono::system_clock::now();
  hold(1, "kh-ratanakiri");
  hold(2, "kh-stungtreng");
  ASSERT_EQ(held_watcher(accepted + std::chrono::hours(25))->sweep_now().first.held_escalated, 2U);
  ASSERT_EQ(decide(2, "kh-stungtreng", "admin:alice", false), store::release_outcome::rejected);

  auto raised = held_watcher(accepted + std::chrono::hours(26), std::chrono::hours(48));
  auto [result, ok] = raised->sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.held_overdue, 1U);  // message 1's, still open; message 2's was closed
  EXPECT_EQ(result.held_closed, 1U);
  EXPECT_EQ(result.held_escalated, 0U);
  EXPECT_EQ(raised->held_overdue(), 1U);
  EXPECT_EQ(open_escalations(held_escalation_kind),
            (std::vector<std::string>{make_id(1) + "/kh-ratanakiri"}));
}

TEST_F(DeadlineWatch, RequestsBeforeTheLookbackAreNotWatchedAndAFailedStoreIsReported) {
  request(1, "2026-03-01");
  // Ten days of lookback from 2036: the request was accepted long before.
  const auto at = *parse_rfc3339("2036-03-02T12:00:00Z");
  deadline_watch short_sight(store_, {.interval = std::chrono::seconds(3600),
                                      .lookback = std::chrono::hours(24 * 10),
                                      .actor = "gateway:test",
                                      .clock = [at] { return at; }});
  auto [result, ok] = short_sight.sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.overdue, 0U);
  store_->stop();
  EXPECT_FALSE(watcher("2026-03-02")->sweep_now().second);
}

}  // namespace
}  // namespace mxgw::report
