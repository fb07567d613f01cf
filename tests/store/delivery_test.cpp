// Tests of delivery rows: accept with recipients, claiming with leases and fairness, reports, dead
// letters and replay, the due callback, reopen, on every backend (StoreDelivery); SQLite's own
// batching, disk-full and migration from version 1 (SqliteDelivery).
#include "gateway/store/sqlite_store.hpp"

#include "gateway/common/time.hpp"
#include "tests/store/sealable_store_test.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

// ---------------------------------------------------------------------------------------------
// A clock the test moves by hand, so due times and leases are tested without sleeping

class manual_clock {
 public:
  manual_clock() : ms_(to_ms(*parse_rfc3339("2026-11-22T04:38:47.123Z"))) {}

  time_point now() const { return time_point(std::chrono::milliseconds(ms_.load())); }
  void advance(std::chrono::milliseconds by) { ms_ += by.count(); }
  void set(time_point t) { ms_ = to_ms(t); }

  /// The function for sqlite_options::clock; the clock must outlive the store.
  std::function<time_point()> function() {
    return [this] { return now(); };
  }

 private:
  static std::int64_t to_ms(time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }

  std::atomic<std::int64_t> ms_;
};

sqlite_options options_for(const std::filesystem::path& path, manual_clock& clock) {
  sqlite_options options;
  options.path = path;
  options.busy_timeout_ms = 60000;  // a gate may hold the lock while the test queues work
  options.clock = clock.function();
  return options;
}

// ---------------------------------------------------------------------------------------------
// Records

delivery_plan plan_for(const std::string& recipient, const std::string& payload = "{}") {
  return delivery_plan{recipient, "explicit", payload, R"([{"pointer":"/victim","reason":"x"}])"};
}

/// A record for `recipients` (one delivery each; the payload names message and recipient).
message_record record_for(int n, const std::vector<std::string>& recipients,
                          std::vector<route_exclusion> exclusions = {}) {
  const std::string body = R"({"case":)" + std::to_string(n) + "}";
  message_record record{
      make_id(n),        "kh-cnp", "victim.identification", "2026-11-22T04:38:47Z",
      fingerprint(body), body};
  for (const auto& recipient : recipients) {
    record.deliveries.push_back(
        plan_for(recipient, "payload " + std::to_string(n) + " " + recipient));
  }
  record.exclusions = std::move(exclusions);
  return record;
}

// ---------------------------------------------------------------------------------------------
// Synchronous wrappers (each waits for its handler, bounded)

template <typename T>
T wait_for(std::future<T>& future, const char* what) {
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << what << " handler not called";
    return T{};
  }
  return future.get();
}

accept_result accept_now(message_store& store, message_record record) {
  std::promise<accept_result> promise;
  auto future = promise.get_future();
  store.accept(std::move(record), [&promise](accept_result r) { promise.set_value(std::move(r)); });
  return wait_for(future, "accept");
}

message_status find_now(message_store& store, const std::string& id) {
  std::promise<std::pair<std::optional<message_status>, bool>> promise;
  auto future = promise.get_future();
  store.find(id, [&promise](std::optional<message_status> status, bool ok) {
    promise.set_value({std::move(status), ok});
  });
  auto [status, ok] = wait_for(future, "find");
  EXPECT_TRUE(ok);
  EXPECT_TRUE(status.has_value()) << id;
  return status.value_or(message_status{});
}

struct claimed {
  std::vector<delivery_job> jobs;
  bool ok = false;
};

claimed claim_now(message_store& store, const std::string& owner, std::size_t max_jobs,
                  std::chrono::milliseconds lease = 30s, std::vector<std::string> skip = {},
                  std::vector<recipient_cap> caps = {}) {
  std::promise<claimed> promise;
  auto future = promise.get_future();
  for (auto& recipient : skip) {
    caps.push_back({std::move(recipient), 0});  // skipped: no row for it
  }
  store.claim_due(owner, max_jobs, lease, std::move(caps),
                  [&promise](std::vector<delivery_job> jobs, bool ok) {
                    promise.set_value({std::move(jobs), ok});
                  });
  return wait_for(future, "claim");
}

bool report_now(message_store& store, attempt_report report) {
  std::promise<bool> promise;
  auto future = promise.get_future();
  store.report(std::move(report), [&promise](bool ok) { promise.set_value(ok); });
  return wait_for(future, "report");
}

attempt_report delivered(const delivery_job& job, const std::string& owner,
                         std::string receipt = R"({"receipt":"ok"})") {
  attempt_report report{job.message_id, job.recipient, owner, attempt_result::delivered};
  report.attempt = job.attempt;
  report.receipt = std::move(receipt);
  return report;
}

attempt_report retry(const delivery_job& job, const std::string& owner, time_point next,
                     std::string error = "http-503") {
  attempt_report report{job.message_id, job.recipient, owner, attempt_result::retry, next};
  report.attempt = job.attempt;
  report.error = std::move(error);
  return report;
}

attempt_report dead(const delivery_job& job, const std::string& owner,
                    std::string error = "http-422: refused") {
  attempt_report report{job.message_id, job.recipient, owner, attempt_result::dead};
  report.attempt = job.attempt;
  report.error = std::move(error);
  return report;
}

/// (found, ok)
std::pair<bool, bool> replay_now(message_store& store, const std::string& id,
                                 const std::string& recipient) {
  std::promise<std::pair<bool, bool>> promise;
  auto future = promise.get_future();
  store.replay(id, recipient, {}, [&promise](bool found, bool ok) { promise.set_value({found, ok}); });
  return wait_for(future, "replay");
}

std::vector<dead_letter> list_dead_now(message_store& store, std::size_t limit) {
  std::promise<std::pair<std::vector<dead_letter>, bool>> promise;
  auto future = promise.get_future();
  store.list_dead(limit, [&promise](std::vector<dead_letter> dead, bool ok) {
    promise.set_value({std::move(dead), ok});
  });
  auto [letters, ok] = wait_for(future, "list_dead");
  EXPECT_TRUE(ok);
  return letters;
}

const recipient_status* recipient_of(const message_status& status, const std::string& who) {
  for (const auto& r : status.recipients) {
    if (r.recipient == who) {
      return &r;
    }
  }
  ADD_FAILURE() << "no recipient " << who << " for " << status.id;
  return nullptr;
}

std::string count_rows(const std::filesystem::path& db, const std::string& table) {
  return raw_db(db).text("SELECT count(*) FROM " + table);
}

/// Accepts one message for `recipient`, claims it for `owner` and reports it dead.
void make_dead(message_store& store, int n, const std::string& recipient,
               const std::string& error = "http-422: refused") {
  ASSERT_EQ(accept_now(store, record_for(n, {recipient})).outcome, accept_outcome::stored);
  const claimed got = claim_now(store, "worker-dead", 100, 30s);
  ASSERT_TRUE(got.ok);
  const auto job = std::find_if(got.jobs.begin(), got.jobs.end(),
                                [&](const delivery_job& j) { return j.message_id == make_id(n); });
  ASSERT_NE(job, got.jobs.end());
  ASSERT_TRUE(report_now(store, dead(*job, "worker-dead", error)));
}

// ---------------------------------------------------------------------------------------------
// Every backend (store_backends.hpp): the same tests against SQLite and PostgreSQL

class StoreDelivery : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override {
    if (const auto reason = unavailable_reason(GetParam()); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
  }
  /// Opens (or reopens) the store of `dir` with the test's clock.
  std::unique_ptr<message_store> open(const test::temp_dir& dir, manual_clock& clock) {
    dirs_.push_back(dir.path());
    return GetParam().open(dir.path(), clock.function());
  }
  /// The first column of the first row of `sql`, run on the backend's database directly.
  std::string query(const test::temp_dir& dir, const std::string& sql) {
    if (GetParam().name == "sqlite") {
      return raw_db(dir / "store.db").text(sql);
    }
    return pg_exec("SET search_path TO " + pg_schema_for(dir.path()) + "; " + sql);
  }
  void TearDown() override {
    if (GetParam().cleanup) {
      for (const auto& dir : dirs_) {
        GetParam().cleanup(dir);
      }
    }
  }

 private:
  std::vector<std::filesystem::path> dirs_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreDelivery, ::testing::ValuesIn(contract_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------------------------
// Accept

TEST_P(StoreDelivery, AcceptWritesDeliveriesAndExclusionsTogether) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  const route_exclusion excluded{"th-dsi", "rule-asean", "not-releasable"};
  const message_record record = record_for(1, {"la-mps", "interpol"}, {excluded});

  const accept_result result = accept_now(store, record);
  ASSERT_EQ(result.outcome, accept_outcome::stored);
  EXPECT_EQ(result.accepted_at, "2026-11-22T04:38:47.123Z");  // the injected clock

  const message_status status = find_now(store, record.id);
  EXPECT_EQ(status.state, "accepted");
  ASSERT_EQ(status.recipients.size(), 2U);
  EXPECT_EQ(status.recipients[0].recipient, "interpol");  // ordered by recipient
  EXPECT_EQ(status.recipients[1].recipient, "la-mps");
  for (const auto& r : status.recipients) {
    EXPECT_EQ(r.state, "pending");
    EXPECT_EQ(r.decided_by, "explicit");
    EXPECT_EQ(r.attempts, 0);
    EXPECT_EQ(r.next_attempt_at, clock.now());  // due at once
    EXPECT_EQ(r.withheld, R"([{"pointer":"/victim","reason":"x"}])");
    EXPECT_FALSE(r.delivered_at.has_value());
    EXPECT_TRUE(r.last_error.empty());
    EXPECT_TRUE(r.receipt.empty());
  }
  ASSERT_EQ(status.exclusions.size(), 1U);
  EXPECT_EQ(status.exclusions[0].partner, "th-dsi");
  EXPECT_EQ(status.exclusions[0].considered, "rule-asean");
  EXPECT_EQ(status.exclusions[0].reason, "not-releasable");
}

TEST_P(StoreDelivery, EmptyWithheldIsStoredAsAnEmptyArray) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  message_record record = record_for(1, {"la-mps"});
  record.deliveries[0].withheld.clear();
  ASSERT_EQ(accept_now(store, record).outcome, accept_outcome::stored);
  EXPECT_EQ(find_now(store, record.id).recipients.at(0).withheld, "[]");
}

/// A record whose recipient `recipient` gets the body as stored (beside `la-mps`, which gets a
/// copy of its own).
message_record with_body_recipient(int n, const std::string& recipient) {
  message_record record = record_for(n, {"la-mps"});
  record.deliveries.push_back(
      {.recipient = recipient, .decided_by = "rule-1", .payload_is_body = true});
  return record;
}

purge_result purge_now(message_store& store, retention_cut cut) {
  std::promise<std::pair<purge_result, bool>> promise;
  auto future = promise.get_future();
  store.purge(std::move(cut), [&promise](purge_result r, bool ok) { promise.set_value({r, ok}); });
  auto [result, ok] = wait_for(future, "purge");
  EXPECT_TRUE(ok);
  return result;
}

TEST_P(StoreDelivery, ARecipientOfTheBodyIsHandedTheStoredBodyAndNoCopyIsKept) {
  test::temp_dir dir;
  manual_clock clock;
  auto store = open(dir, clock);
  const message_record record = with_body_recipient(1, "interpol");
  ASSERT_EQ(accept_now(*store, record).outcome, accept_outcome::stored);
  EXPECT_EQ(query(dir, "SELECT length(payload) FROM deliveries WHERE recipient = 'interpol'"), "0");
  EXPECT_EQ(query(dir, "SELECT length(payload) FROM deliveries WHERE recipient = 'la-mps'"),
            std::to_string(record.deliveries[0].payload.size()));

  claimed got = claim_now(*store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 2U);
  std::map<std::string, delivery_job> by_recipient;
  for (const auto& job : got.jobs) {
    by_recipient[job.recipient] = job;
  }
  EXPECT_EQ(by_recipient["interpol"].payload, record.body);
  EXPECT_TRUE(by_recipient["interpol"].payload_is_body);
  EXPECT_EQ(by_recipient["interpol"].body_grant, "");
  EXPECT_EQ(by_recipient["la-mps"].body_grant, "");
  EXPECT_EQ(by_recipient["la-mps"].payload, record.deliveries[0].payload);
  EXPECT_FALSE(by_recipient["la-mps"].payload_is_body);

  // A dead letter replayed is handed the body again.
  ASSERT_TRUE(report_now(*store, dead(by_recipient["interpol"], "w")));
  EXPECT_EQ(replay_now(*store, record.id, "interpol"), std::make_pair(true, true));
  got = claim_now(*store, "w2", 10);
  ASSERT_EQ(got.jobs.size(), 1U);
  EXPECT_EQ(got.jobs[0].payload, record.body);
  EXPECT_TRUE(got.jobs[0].payload_is_body);
}

TEST_P(StoreDelivery, RetentionKeepsABodyWhileItsRecipientMayStillBeHandedIt) {
  test::temp_dir dir;
  manual_clock clock;
  auto store = open(dir, clock);
  message_record record = with_body_recipient(1, "interpol");
  record.deliveries.erase(record.deliveries.begin());  // the body's recipient alone
  ASSERT_EQ(accept_now(*store, record).outcome, accept_outcome::stored);
  const claimed got = claim_now(*store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 1U);
  ASSERT_TRUE(report_now(*store, dead(got.jobs[0], "w")));

  const auto now = clock.now();
  const auto day = std::chrono::hours(24);
  // Delivered copies past their time, dead ones not: the dead letter may still be replayed, so
  // the body it would be handed stays.
  purge_result first = purge_now(*store, {now + day, now - day, 1000, "gateway:test"});
  EXPECT_EQ(first.payloads, 0U);
  EXPECT_EQ(first.bodies, 0U);
  EXPECT_NE(query(dir, "SELECT length(body) FROM messages"), "0");
  // Once the dead letter is past its time it expires (counted as its payload), and the body goes.
  purge_result second = purge_now(*store, {now + day, now + day, 1000, "gateway:test"});
  EXPECT_EQ(second.payloads, 1U);
  EXPECT_EQ(second.bodies, 1U);
  EXPECT_EQ(query(dir, "SELECT length(body) FROM messages"), "0");
  EXPECT_EQ(recipient_of(find_now(*store, record.id), "interpol")->state, "expired");
  EXPECT_EQ(replay_now(*store, record.id, "interpol"), std::make_pair(false, true));
}

TEST_P(StoreDelivery, WhatTheRowOfABodysRecipientHoldsIsHandedOutBesideTheBody) {
  test::temp_dir dir;
  manual_clock clock;
  auto store = open(dir, clock);
  message_record record = with_body_recipient(1, "interpol");
  record.deliveries.back().payload = "a token of the layer above";
  ASSERT_EQ(accept_now(*store, record).outcome, accept_outcome::stored);
  const claimed got = claim_now(*store, "w", 10, 30s, {"la-mps"});
  ASSERT_EQ(got.jobs.size(), 1U);
  EXPECT_EQ(got.jobs[0].payload, record.body);
  EXPECT_EQ(got.jobs[0].body_grant, "a token of the layer above");
}

TEST_P(StoreDelivery, NoDeliveriesMeansUndeliverable) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  const message_record record =
      record_for(1, {}, {{"la-mps", "explicit", "does-not-receive-type"}});
  ASSERT_EQ(accept_now(store, record).outcome, accept_outcome::stored);

  const message_status status = find_now(store, record.id);
  EXPECT_EQ(status.state, "undeliverable");
  EXPECT_TRUE(status.recipients.empty());
  ASSERT_EQ(status.exclusions.size(), 1U);
  EXPECT_EQ(status.exclusions[0].reason, "does-not-receive-type");
  EXPECT_TRUE(claim_now(store, "w", 10).jobs.empty());
}

TEST_P(StoreDelivery, DuplicateAcceptCreatesNothing) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  const message_record record = record_for(1, {"la-mps", "interpol"}, {{"th-dsi", "r", "x"}});
  const accept_result first = accept_now(store, record);
  ASSERT_EQ(first.outcome, accept_outcome::stored);

  clock.advance(5s);
  const accept_result again = accept_now(store, record);
  EXPECT_EQ(again.outcome, accept_outcome::duplicate);
  EXPECT_EQ(again.accepted_at, first.accepted_at);
  EXPECT_EQ(query(dir, "SELECT count(*) FROM deliveries"), "2");
  EXPECT_EQ(query(dir, "SELECT count(*) FROM exclusions"), "1");
  // A conflicting copy adds nothing either.
  message_record other = record_for(1, {"kh-cnp"});
  other.body_sha256 = "other";
  EXPECT_EQ(accept_now(store, other).outcome, accept_outcome::conflict);
  EXPECT_EQ(query(dir, "SELECT count(*) FROM deliveries"), "2");
  // What the duplicate check compares is what find() tells (the partner API answers a resend
  // it would refuse now by it).
  const auto found = find_now(store, record.id);
  EXPECT_EQ(found.sender, record.sender);
  EXPECT_EQ(found.body_sha256, record.body_sha256);
  EXPECT_EQ(found.accepted_at, first.accepted_at);
}

TEST(SqliteDelivery, AnInvalidRecordFailsAloneNotItsBatch) {
  test::temp_dir dir;
  manual_clock clock;
  const auto path = dir / "store.db";
  sqlite_store store(options_for(path, clock));
  message_record twice = record_for(2, {"la-mps", "la-mps"});  // a routing bug upstream

  std::promise<accept_result> bad;
  std::promise<accept_result> good;
  {
    writer_gate gate(path);
    store.claim_due("w", 0, 30s, {}, {});  // a primer, alone in the first batch
    wait_until_writer_took_all(store);
    store.accept(twice, [&bad](accept_result r) { bad.set_value(std::move(r)); });
    store.accept(record_for(3, {"la-mps"}),
                 [&good](accept_result r) { good.set_value(std::move(r)); });
  }
  auto bad_future = bad.get_future();
  auto good_future = good.get_future();
  const accept_result refused = wait_for(bad_future, "accept");
  EXPECT_EQ(refused.outcome, accept_outcome::unavailable);
  EXPECT_EQ(refused.reason, "invalid-record");
  EXPECT_EQ(wait_for(good_future, "accept").outcome, accept_outcome::stored);
  EXPECT_EQ(count_messages(path), 1U);
  EXPECT_EQ(count_rows(path, "deliveries"), "1");
}

// ---------------------------------------------------------------------------------------------
// Claim

TEST_P(StoreDelivery, ClaimLeasesDueRowsAndCountsTheAttempt) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  const accept_result accepted = accept_now(store, record_for(1, {"la-mps", "interpol"}));
  ASSERT_EQ(accepted.outcome, accept_outcome::stored);

  const claimed got = claim_now(store, "worker-a", 10, 30s);
  ASSERT_TRUE(got.ok);
  ASSERT_EQ(got.jobs.size(), 2U);
  for (const auto& job : got.jobs) {
    EXPECT_EQ(job.message_id, make_id(1));
    EXPECT_EQ(job.sender, "kh-cnp");
    EXPECT_EQ(job.type, "victim.identification");
    EXPECT_EQ(job.payload, "payload 1 " + job.recipient);
    EXPECT_EQ(job.attempt, 1);
    EXPECT_EQ(job.accepted_at, *parse_rfc3339(accepted.accepted_at));
  }
  for (const auto& r : find_now(store, make_id(1)).recipients) {
    EXPECT_EQ(r.state, "delivering");
    EXPECT_EQ(r.attempts, 1);
    EXPECT_FALSE(r.next_attempt_at.has_value());
  }
  EXPECT_EQ(query(dir, "SELECT count(DISTINCT lease_owner) || ' ' || min(lease_owner) "
                       "FROM deliveries"),
            "1 worker-a");
  EXPECT_EQ(query(dir, "SELECT DISTINCT lease_expires - next_attempt_at FROM deliveries"),
            "30000");
}

TEST_P(StoreDelivery, RowsNotYetDueAreNotClaimed) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  clock.advance(-1ms);  // next_attempt_at is one millisecond in the future now
  EXPECT_TRUE(claim_now(store, "w", 10).jobs.empty());
  clock.advance(1ms);
  EXPECT_EQ(claim_now(store, "w", 10).jobs.size(), 1U);
}

TEST_P(StoreDelivery, RetryIsClaimedAgainOnlyWhenDue) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed first = claim_now(store, "w", 10);
  ASSERT_EQ(first.jobs.size(), 1U);
  ASSERT_TRUE(report_now(store, retry(first.jobs[0], "w", clock.now() + 10min)));

  clock.advance(10min - 1ms);
  EXPECT_TRUE(claim_now(store, "w", 10).jobs.empty());
  clock.advance(1ms);
  const claimed second = claim_now(store, "w", 10);
  ASSERT_EQ(second.jobs.size(), 1U);
  EXPECT_EQ(second.jobs[0].attempt, 2);
}

TEST_P(StoreDelivery, ACopyGivenBackUntriedKeepsItsAttempt) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  // A real attempt failed: attempt 1 is used up.
  const claimed first = claim_now(store, "w", 10);
  ASSERT_EQ(first.jobs.size(), 1U);
  ASSERT_TRUE(report_now(store, retry(first.jobs[0], "w", clock.now())));
  // Claimed again (attempt 2), then given back untried twice: the circuit was open, then the
  // gateway was stopping.
  for (const char* why : {"circuit-open", "gateway-stopping"}) {
    const claimed again = claim_now(store, "w", 10);
    ASSERT_EQ(again.jobs.size(), 1U) << why;
    ASSERT_EQ(again.jobs[0].attempt, 2) << why;
    attempt_report back = retry(again.jobs[0], "w", clock.now(), why);
    back.attempted = false;
    ASSERT_TRUE(report_now(store, std::move(back)));
    const recipient_status row = find_now(store, make_id(1)).recipients.at(0);
    EXPECT_EQ(row.state, "retrying") << why;
    EXPECT_EQ(row.attempts, 1) << why;
    EXPECT_EQ(row.last_error, why);
  }
  const claimed third = claim_now(store, "w", 10);
  ASSERT_EQ(third.jobs.size(), 1U);
  EXPECT_EQ(third.jobs[0].attempt, 2);
  // A late report of the untried claim changes nothing now (the row is at a new lease).
  attempt_report late = retry(third.jobs[0], "w", clock.now(), "circuit-open");
  late.attempted = false;
  late.attempt = 3;
  ASSERT_TRUE(report_now(store, std::move(late)));
  EXPECT_EQ(find_now(store, make_id(1)).recipients.at(0).state, "delivering");
}

TEST_P(StoreDelivery, ADeadLetterDecidedBeforeSendingCountsNoAttempt) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  // Claimed, then found expired (or its recipient gone) before anything was sent: a dead letter
  // that never reached anyone, so no withdrawal or status may treat it as having reached it.
  const claimed first = claim_now(store, "w", 10);
  ASSERT_EQ(first.jobs.size(), 1U);
  attempt_report never = dead(first.jobs[0], "w", "handling-expired");
  never.attempted = false;
  ASSERT_TRUE(report_now(store, std::move(never)));
  const recipient_status row = find_now(store, make_id(1)).recipients.at(0);
  EXPECT_EQ(row.state, "dead");
  EXPECT_EQ(row.attempts, 0);
  EXPECT_EQ(row.last_error, "handling-expired");
  // A dead letter after a real attempt keeps it.
  ASSERT_EQ(accept_now(store, record_for(2, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed second = claim_now(store, "w", 10);
  ASSERT_EQ(second.jobs.size(), 1U);
  ASSERT_TRUE(report_now(store, dead(second.jobs[0], "w", "http-400")));
  EXPECT_EQ(find_now(store, make_id(2)).recipients.at(0).attempts, 1);
}

TEST_P(StoreDelivery, LeasedRowsAreNotClaimedTwiceUntilTheLeaseExpires) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps", "interpol"})).outcome,
            accept_outcome::stored);
  ASSERT_EQ(claim_now(store, "worker-a", 10, 30s).jobs.size(), 2U);

  EXPECT_TRUE(claim_now(store, "worker-b", 10, 30s).jobs.empty());
  clock.advance(30s - 1ms);
  EXPECT_TRUE(claim_now(store, "worker-b", 10, 30s).jobs.empty());

  // worker-a "crashed": once its lease has run out, another worker takes the rows over.
  clock.advance(1ms);
  const claimed again = claim_now(store, "worker-b", 10, 30s);
  ASSERT_EQ(again.jobs.size(), 2U);
  for (const auto& job : again.jobs) {
    EXPECT_EQ(job.attempt, 2);
  }
  EXPECT_TRUE(claim_now(store, "worker-c", 10, 30s).jobs.empty());  // leased to b now
}

TEST_P(StoreDelivery, AHugeLeaseDoesNotWrapAround) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  ASSERT_EQ(claim_now(store, "a", 10, std::chrono::milliseconds::max()).jobs.size(), 1U);
  clock.advance(24h * 365 * 100);
  EXPECT_TRUE(claim_now(store, "b", 10).jobs.empty());
}

TEST_P(StoreDelivery, SkippedRecipientsAreLeftAlone) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps", "interpol", "kh-cnp"})).outcome,
            accept_outcome::stored);

  const claimed got = claim_now(store, "w", 10, 30s, {"la-mps", "kh-cnp", "la-mps"});
  ASSERT_EQ(got.jobs.size(), 1U);
  EXPECT_EQ(got.jobs[0].recipient, "interpol");
  EXPECT_TRUE(claim_now(store, "w", 10, 30s, {"kh-cnp", "la-mps"}).jobs.empty());
  const claimed rest = claim_now(store, "w", 10, 30s, {"kh-cnp"});
  ASSERT_EQ(rest.jobs.size(), 1U);
  EXPECT_EQ(rest.jobs[0].recipient, "la-mps");
}

TEST_P(StoreDelivery, ACappedRecipientGetsNoMoreThanItsCap) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  for (int n = 0; n < 10; ++n) {
    ASSERT_EQ(accept_now(store, record_for(n, {"slow"})).outcome, accept_outcome::stored);
    ASSERT_EQ(accept_now(store, record_for(100 + n, {"fast"})).outcome, accept_outcome::stored);
  }
  // "slow" may take 2 more (its concurrency less what is in flight); "fast" is not capped.
  const claimed first = claim_now(store, "w", 50, 30s, {}, {{"slow", 2}});
  std::map<std::string, int> per_recipient;
  for (const auto& job : first.jobs) {
    ++per_recipient[job.recipient];
  }
  EXPECT_EQ(per_recipient, (std::map<std::string, int>{{"fast", 10}, {"slow", 2}}));
  // The rest of "slow" is still due for a later claim, oldest first.
  const claimed second = claim_now(store, "w", 50, 30s, {}, {{"slow", 3}});
  ASSERT_EQ(second.jobs.size(), 3U);
  EXPECT_EQ(second.jobs[0].message_id, make_id(2));
  // A cap of 0 is a skip.
  EXPECT_TRUE(claim_now(store, "w", 50, 30s, {}, {{"slow", 0}}).jobs.empty());
}

TEST_P(StoreDelivery, ADeepQueueDoesNotStarveOtherRecipients) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  // 50 older messages for one recipient, then one each for three others.
  for (int n = 0; n < 50; ++n) {
    ASSERT_EQ(accept_now(store, record_for(n, {"deep"})).outcome, accept_outcome::stored);
    clock.advance(1s);
  }
  for (int n = 100; n < 103; ++n) {
    const std::string who = "partner-" + std::to_string(n);
    ASSERT_EQ(accept_now(store, record_for(n, {who})).outcome, accept_outcome::stored);
    clock.advance(1s);
  }

  // Round robin: every due recipient gets its oldest row first.
  const claimed first = claim_now(store, "w", 4);
  ASSERT_EQ(first.jobs.size(), 4U);
  std::map<std::string, int> per_recipient;
  for (const auto& job : first.jobs) {
    ++per_recipient[job.recipient];
  }
  EXPECT_EQ(per_recipient,
            (std::map<std::string, int>{
                {"deep", 1}, {"partner-100", 1}, {"partner-101", 1}, {"partner-102", 1}}));
  EXPECT_EQ(first.jobs[0].recipient, "deep");  // the oldest due row leads
  EXPECT_EQ(first.jobs[0].message_id, make_id(0));

  // Only the deep queue is left: it fills the slots, oldest first.
  const claimed second = claim_now(store, "w", 5);
  ASSERT_EQ(second.jobs.size(), 5U);
  for (std::size_t i = 0; i < second.jobs.size(); ++i) {
    EXPECT_EQ(second.jobs[i].recipient, "deep");
    EXPECT_EQ(second.jobs[i].message_id, make_id(static_cast<int>(i) + 1));
  }

  // With two recipients due and 4 slots, neither takes more than its half.
  ASSERT_EQ(accept_now(store, record_for(200, {"late"})).outcome, accept_outcome::stored);
  ASSERT_EQ(accept_now(store, record_for(201, {"late"})).outcome, accept_outcome::stored);
  const claimed third = claim_now(store, "w", 4);
  ASSERT_EQ(third.jobs.size(), 4U);
  EXPECT_EQ(std::count_if(third.jobs.begin(), third.jobs.end(),
                          [](const delivery_job& j) { return j.recipient == "late"; }),
            2);
}

TEST_P(StoreDelivery, ARecipientsDueRowsAreTakenOldestFirstWhateverTheirState) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  // la-mps: message 1 leased at 0 s (the lease runs out at 30 s), message 2 retrying from 5 s,
  // message 3 pending since 2 s; interpol: message 4 pending since 3 s.
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  ASSERT_EQ(claim_now(store, "w", 1, 30s).jobs.size(), 1U);
  clock.advance(1s);
  ASSERT_EQ(accept_now(store, record_for(2, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed second = claim_now(store, "w", 10, 30s);
  ASSERT_EQ(second.jobs.size(), 1U);
  ASSERT_EQ(second.jobs[0].message_id, make_id(2));
  ASSERT_TRUE(report_now(store, retry(second.jobs[0], "w", clock.now() + 4s)));
  clock.advance(1s);
  ASSERT_EQ(accept_now(store, record_for(3, {"la-mps"})).outcome, accept_outcome::stored);
  clock.advance(1s);
  ASSERT_EQ(accept_now(store, record_for(4, {"interpol"})).outcome, accept_outcome::stored);
  clock.advance(28s);  // 31 s: everything is due

  // Round robin over the recipients, each one's rows by due time whatever their state.
  const claimed two = claim_now(store, "w2", 2, 30s);
  ASSERT_EQ(two.jobs.size(), 2U);
  EXPECT_EQ(two.jobs[0].message_id, make_id(1));  // the expired lease, due since 0 s
  EXPECT_EQ(two.jobs[1].message_id, make_id(4));  // interpol's first turn
  const claimed rest = claim_now(store, "w2", 10, 30s);
  ASSERT_EQ(rest.jobs.size(), 2U);
  EXPECT_EQ(rest.jobs[0].message_id, make_id(3));  // pending since 2 s
  EXPECT_EQ(rest.jobs[1].message_id, make_id(2));  // retrying from 5 s
  EXPECT_EQ(rest.jobs[1].attempt, 2);
}

TEST_P(StoreDelivery, ClaimOfNothingIsEmptyAndOk) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  const claimed none = claim_now(store, "w", 10);
  EXPECT_TRUE(none.ok);
  EXPECT_TRUE(none.jobs.empty());
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed zero = claim_now(store, "w", 0);
  EXPECT_TRUE(zero.ok);
  EXPECT_TRUE(zero.jobs.empty());
  EXPECT_EQ(find_now(store, make_id(1)).recipients.at(0).state, "pending");
}

// ---------------------------------------------------------------------------------------------
// Report

TEST_P(StoreDelivery, ReportsUpdateTheRowsFindShows) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"a-ok", "b-retry", "c-dead"})).outcome,
            accept_outcome::stored);
  const claimed got = claim_now(store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 3U);
  std::map<std::string, delivery_job> by_recipient;
  for (const auto& job : got.jobs) {
    by_recipient[job.recipient] = job;
  }

  clock.advance(2s);
  const time_point reported_at = clock.now();
  const time_point next = reported_at + 1min;
  ASSERT_TRUE(report_now(store, delivered(by_recipient["a-ok"], "w", R"({"receipt":"r-1"})")));
  ASSERT_TRUE(report_now(store, retry(by_recipient["b-retry"], "w", next, "timeout")));
  ASSERT_TRUE(report_now(store, dead(by_recipient["c-dead"], "w", "http-422: unknown type")));

  const message_status status = find_now(store, make_id(1));
  const recipient_status* ok = recipient_of(status, "a-ok");
  const recipient_status* later = recipient_of(status, "b-retry");
  const recipient_status* gone = recipient_of(status, "c-dead");
  ASSERT_TRUE(ok != nullptr && later != nullptr && gone != nullptr);

  EXPECT_EQ(ok->state, "delivered");
  EXPECT_EQ(ok->receipt, R"({"receipt":"r-1"})");
  EXPECT_EQ(ok->delivered_at, reported_at);
  EXPECT_FALSE(ok->next_attempt_at.has_value());
  EXPECT_EQ(ok->attempts, 1);

  EXPECT_EQ(later->state, "retrying");
  EXPECT_EQ(later->next_attempt_at, next);
  EXPECT_EQ(later->last_error, "timeout");
  EXPECT_FALSE(later->delivered_at.has_value());

  EXPECT_EQ(gone->state, "dead");
  EXPECT_EQ(gone->last_error, "http-422: unknown type");
  EXPECT_FALSE(gone->next_attempt_at.has_value());

  // Nothing delivered or dead is claimed again; the retry waits for its time.
  EXPECT_TRUE(claim_now(store, "w", 10).jobs.empty());
  EXPECT_EQ(query(dir, "SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL "
                       "OR lease_expires IS NOT NULL"),
            "0");
}

TEST_P(StoreDelivery, ReceiptAndErrorAreBounded) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"a", "b", "c"})).outcome, accept_outcome::stored);
  const claimed got = claim_now(store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 3U);
  std::map<std::string, delivery_job> by_recipient;
  for (const auto& job : got.jobs) {
    by_recipient[job.recipient] = job;
  }
  // A two-byte character straddling the 4096-byte limit is left out whole, not cut in half.
  const std::string straddling = std::string(4095, 'r') + "\xc3\xa9" + "tail";
  ASSERT_TRUE(report_now(store, delivered(by_recipient["a"], "w", straddling)));
  ASSERT_TRUE(report_now(store, retry(by_recipient["b"], "w", clock.now(), std::string(600, 'e'))));
  ASSERT_TRUE(report_now(store, delivered(by_recipient["c"], "w", std::string(5000, 'x'))));

  const message_status status = find_now(store, make_id(1));
  EXPECT_EQ(recipient_of(status, "a")->receipt, std::string(4095, 'r'));
  EXPECT_EQ(recipient_of(status, "b")->last_error, std::string(512, 'e'));
  EXPECT_EQ(recipient_of(status, "c")->receipt, std::string(4096, 'x'));
}

TEST_P(StoreDelivery, ReportsFromAStaleOwnerAreIgnored) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed by_a = claim_now(store, "worker-a", 10, 30s);
  ASSERT_EQ(by_a.jobs.size(), 1U);

  // Someone who never held the lease.
  EXPECT_TRUE(report_now(store, delivered(by_a.jobs[0], "worker-x")));
  EXPECT_EQ(find_now(store, make_id(1)).recipients.at(0).state, "delivering");

  // worker-a's lease expires and worker-b takes the row over; a's late report changes nothing.
  clock.advance(30s);
  const claimed by_b = claim_now(store, "worker-b", 10, 30s);
  ASSERT_EQ(by_b.jobs.size(), 1U);
  EXPECT_TRUE(report_now(store, dead(by_a.jobs[0], "worker-a")));
  message_status status = find_now(store, make_id(1));
  EXPECT_EQ(status.recipients.at(0).state, "delivering");
  EXPECT_EQ(status.recipients.at(0).attempts, 2);

  EXPECT_TRUE(report_now(store, delivered(by_b.jobs[0], "worker-b")));
  status = find_now(store, make_id(1));
  EXPECT_EQ(status.recipients.at(0).state, "delivered");

  // A second report of the owner after the row settled is ignored too.
  EXPECT_TRUE(report_now(store, dead(by_b.jobs[0], "worker-b")));
  EXPECT_EQ(find_now(store, make_id(1)).recipients.at(0).state, "delivered");
  // So is a report for a row that does not exist.
  delivery_job unknown = by_b.jobs[0];
  unknown.message_id = make_id(404);
  EXPECT_TRUE(report_now(store, delivered(unknown, "worker-b")));
}

// The same tests on every backend, plain and behind encryption at rest (which passes reports
// and replays through to the store underneath).
class StoreDeliveryReports : public sealable_store_test {
 protected:
  /// The entries of the audit chain so far.
  std::size_t audit_entries() {
    std::promise<std::size_t> promise;
    auto future = promise.get_future();
    store_->read_audit(0, 100000, [&promise](std::vector<audit::audit_row> rows, bool ok) {
      EXPECT_TRUE(ok);
      promise.set_value(rows.size());
    });
    return wait_for(future, "read_audit");
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreDeliveryReports, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

// Every worker of one instance claims under the instance's owner name. Attempt 1 hangs past its
// lease, the same instance claims the row again (attempt 2), and only then does attempt 1 time out
// or answer: its report must not settle attempt 2's lease, whatever it says.
TEST_P(StoreDeliveryReports, ReportsOfAnEarlierAttemptOfTheSameOwnerAreIgnored) {
  message_store& store = *store_;
  auto& clock = clock_;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed first = claim_now(store, "mxgw", 10, 30s);
  ASSERT_EQ(first.jobs.size(), 1U);
  ASSERT_EQ(first.jobs[0].attempt, 1);

  clock.advance(30s);
  const claimed second = claim_now(store, "mxgw", 10, 30s);
  ASSERT_EQ(second.jobs.size(), 1U);
  ASSERT_EQ(second.jobs[0].attempt, 2);
  const std::size_t audit_before = audit_entries();

  // Within attempt 2's lease, attempt 1 times out (retry), or is refused (dead), or answers late
  // (delivered): each report changes nothing, and nothing is audited for it.
  clock.advance(20s);
  attempt_report late_retry = retry(first.jobs[0], "mxgw", clock.now() + 1min, "timeout");
  late_retry.audit.push_back({.event = "delivery.retry", .actor = "gateway:mxgw"});
  EXPECT_TRUE(report_now(store, std::move(late_retry)));
  EXPECT_TRUE(report_now(store, dead(first.jobs[0], "mxgw", "http-422: refused")));
  EXPECT_TRUE(report_now(store, delivered(first.jobs[0], "mxgw", "receipt-1")));
  recipient_status row = find_now(store, make_id(1)).recipients.at(0);
  EXPECT_EQ(row.state, "delivering");
  EXPECT_EQ(row.attempts, 2);
  EXPECT_TRUE(row.last_error.empty());
  EXPECT_TRUE(row.receipt.empty());
  EXPECT_EQ(audit_entries(), audit_before);
  // Still leased to attempt 2: nobody else may claim it before its lease runs out.
  EXPECT_TRUE(claim_now(store, "mxgw", 10, 30s).jobs.empty());

  // Attempt 2's own report settles the row.
  EXPECT_TRUE(report_now(store, delivered(second.jobs[0], "mxgw", "receipt-2")));
  row = find_now(store, make_id(1)).recipients.at(0);
  EXPECT_EQ(row.state, "delivered");
  EXPECT_EQ(row.receipt, "receipt-2");
  EXPECT_EQ(row.attempts, 2);
  // A report that names no attempt (0) matches no claimed row.
  ASSERT_EQ(accept_now(store, record_for(2, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed third = claim_now(store, "mxgw", 10, 30s);
  ASSERT_EQ(third.jobs.size(), 1U);
  attempt_report unnumbered = dead(third.jobs[0], "mxgw");
  unnumbered.attempt = 0;
  EXPECT_TRUE(report_now(store, std::move(unnumbered)));
  EXPECT_EQ(find_now(store, make_id(2)).recipients.at(0).state, "delivering");
}

TEST(SqliteDelivery, ReportsAndClaimsShareTheGroupCommitWithAccepts) {
  test::temp_dir dir;
  manual_clock clock;
  const auto path = dir / "store.db";
  sqlite_store store(options_for(path, clock));
  ASSERT_EQ(accept_now(store, record_for(1, {"a", "b"})).outcome, accept_outcome::stored);
  const claimed got = claim_now(store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 2U);
  const std::uint64_t commits_before = store.stats().commits;

  std::promise<void> primed;
  std::promise<bool> first_report;
  std::promise<bool> second_report;
  std::promise<accept_result> accepted;
  std::promise<claimed> claim;
  {
    writer_gate gate(path);
    store.claim_due("w", 0, 30s, {},
                    [&primed](std::vector<delivery_job>, bool) { primed.set_value(); });
    wait_until_writer_took_all(store);  // the primer is alone in its batch
    store.report(delivered(got.jobs[0], "w"), [&](bool ok) { first_report.set_value(ok); });
    store.report(delivered(got.jobs[1], "w"), [&](bool ok) { second_report.set_value(ok); });
    store.accept(record_for(2, {"c"}), [&](accept_result r) { accepted.set_value(r); });
    // Queued after the accept, so it sees the new row in the same transaction.
    store.claim_due("w", 10, 30s, {}, [&](std::vector<delivery_job> jobs, bool ok) {
      claim.set_value({std::move(jobs), ok});
    });
  }
  auto first_future = first_report.get_future();
  auto second_future = second_report.get_future();
  auto accepted_future = accepted.get_future();
  auto claim_future = claim.get_future();
  EXPECT_TRUE(wait_for(first_future, "report"));
  EXPECT_TRUE(wait_for(second_future, "report"));
  EXPECT_EQ(wait_for(accepted_future, "accept").outcome, accept_outcome::stored);
  const claimed after = wait_for(claim_future, "claim");
  ASSERT_EQ(after.jobs.size(), 1U);
  EXPECT_EQ(after.jobs[0].recipient, "c");
  EXPECT_EQ(store.stats().commits, commits_before + 2);  // the primer, then all four together
  EXPECT_GE(store.stats().largest_batch, 4U);
}

// ---------------------------------------------------------------------------------------------
// Dead letters and replay

TEST_P(StoreDelivery, ReplayMakesADeadLetterPendingAgain) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  make_dead(store, 1, "la-mps", "http-422: refused");
  ASSERT_EQ(find_now(store, make_id(1)).recipients.at(0).attempts, 1);

  clock.advance(1h);
  EXPECT_EQ(replay_now(store, make_id(1), "la-mps"), std::make_pair(true, true));
  const recipient_status r = find_now(store, make_id(1)).recipients.at(0);
  EXPECT_EQ(r.state, "pending");
  EXPECT_EQ(r.attempts, 0);
  EXPECT_EQ(r.next_attempt_at, clock.now());
  EXPECT_EQ(r.last_error, "http-422: refused");  // kept for the operator
  EXPECT_TRUE(list_dead_now(store, 10).empty());

  const claimed again = claim_now(store, "w", 10);
  ASSERT_EQ(again.jobs.size(), 1U);
  EXPECT_EQ(again.jobs[0].attempt, 1);
}

// A replay puts the dead letter back in the queue as a release does: its max_age counts from the
// replay (released_at), not from its message's acceptance, however long ago that was.
TEST_P(StoreDeliveryReports, AReplayedDeadLetterIsHandedOutWithTheReplayAsItsAgeBase) {
  message_store& store = *store_;
  auto& clock = clock_;
  const time_point accepted_at = clock.now();
  make_dead(store, 1, "la-mps");
  const claimed before = claim_now(store, "w", 10);
  EXPECT_TRUE(before.jobs.empty());

  clock.advance(72h);
  const time_point replayed_at = clock.now();
  ASSERT_EQ(replay_now(store, make_id(1), "la-mps"), std::make_pair(true, true));
  clock.advance(1s);
  claimed again = claim_now(store, "w", 10);
  ASSERT_EQ(again.jobs.size(), 1U);
  EXPECT_EQ(again.jobs[0].attempt, 1);
  EXPECT_EQ(again.jobs[0].accepted_at, accepted_at);
  ASSERT_TRUE(again.jobs[0].released_at.has_value());
  EXPECT_EQ(*again.jobs[0].released_at, replayed_at);

  // Dead again and replayed once more: the age base is the latest replay.
  ASSERT_TRUE(report_now(store, dead(again.jobs[0], "w")));
  clock.advance(24h);
  ASSERT_EQ(replay_now(store, make_id(1), "la-mps"), std::make_pair(true, true));
  again = claim_now(store, "w", 10);
  ASSERT_EQ(again.jobs.size(), 1U);
  EXPECT_EQ(again.jobs[0].released_at, clock.now());
  // A copy never replayed nor held has none.
  ASSERT_EQ(accept_now(store, record_for(2, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed fresh = claim_now(store, "w", 10);
  ASSERT_EQ(fresh.jobs.size(), 1U);
  EXPECT_FALSE(fresh.jobs[0].released_at.has_value());
}

TEST_P(StoreDelivery, ReplayOfAnythingButADeadLetterIsNotFound) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps", "interpol"})).outcome,
            accept_outcome::stored);
  EXPECT_EQ(replay_now(store, make_id(1), "la-mps"), std::make_pair(false, true));  // pending
  const claimed got = claim_now(store, "w", 1);
  ASSERT_EQ(got.jobs.size(), 1U);
  EXPECT_EQ(replay_now(store, make_id(1), got.jobs[0].recipient),
            std::make_pair(false, true));  // delivering
  ASSERT_TRUE(report_now(store, delivered(got.jobs[0], "w")));
  EXPECT_EQ(replay_now(store, make_id(1), got.jobs[0].recipient),
            std::make_pair(false, true));                                             // delivered
  EXPECT_EQ(replay_now(store, make_id(404), "la-mps"), std::make_pair(false, true));  // unknown
  EXPECT_EQ(find_now(store, make_id(1)).recipients.size(), 2U);
}

TEST_P(StoreDelivery, ListDeadIsOldestFirstAndBounded) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  const time_point start = clock.now();
  make_dead(store, 3, "zz-last-name", "e3");
  clock.advance(1min);
  make_dead(store, 1, "mm", "e1");
  clock.advance(1min);
  make_dead(store, 2, "aa-first-name", "e2");
  ASSERT_EQ(accept_now(store, record_for(9, {"alive"})).outcome, accept_outcome::stored);

  const std::vector<dead_letter> all = list_dead_now(store, 10);
  ASSERT_EQ(all.size(), 3U);
  EXPECT_EQ(all[0].message_id, make_id(3));
  EXPECT_EQ(all[0].recipient, "zz-last-name");
  EXPECT_EQ(all[0].sender, "kh-cnp");
  EXPECT_EQ(all[0].type, "victim.identification");
  EXPECT_EQ(all[0].attempts, 1);
  EXPECT_EQ(all[0].last_error, "e3");
  EXPECT_EQ(all[0].dead_since, start);
  EXPECT_EQ(all[1].message_id, make_id(1));
  EXPECT_EQ(all[1].dead_since, start + 1min);
  EXPECT_EQ(all[2].message_id, make_id(2));

  const std::vector<dead_letter> two = list_dead_now(store, 2);
  ASSERT_EQ(two.size(), 2U);
  EXPECT_EQ(two[1].message_id, make_id(1));
  EXPECT_TRUE(list_dead_now(store, 0).empty());
}

// ---------------------------------------------------------------------------------------------
// The due callback

TEST_P(StoreDelivery, DeliveriesDueIsCalledAfterCommitsThatCreateDueRows) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  std::atomic<int> calls{0};
  store.on_deliveries_due([&calls] { ++calls; });
  // The writer calls it after the batch's handlers; a later write's handler comes after it.
  const auto calls_after_next_batch = [&] {
    EXPECT_TRUE(claim_now(store, "barrier", 0).ok);
    return calls.load();
  };

  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  EXPECT_EQ(calls_after_next_batch(), 1);
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::duplicate);
  EXPECT_EQ(calls_after_next_batch(), 1);  // a duplicate creates nothing
  ASSERT_EQ(accept_now(store, record_for(2, {})).outcome, accept_outcome::stored);
  EXPECT_EQ(calls_after_next_batch(), 1);  // no deliveries

  const claimed got = claim_now(store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 1U);
  ASSERT_TRUE(report_now(store, dead(got.jobs[0], "w")));
  EXPECT_EQ(calls_after_next_batch(), 1);  // claims and reports create nothing due

  EXPECT_EQ(replay_now(store, make_id(1), "la-mps"), std::make_pair(true, true));
  EXPECT_EQ(calls_after_next_batch(), 2);
  EXPECT_EQ(replay_now(store, make_id(1), "la-mps"), std::make_pair(false, true));
  EXPECT_EQ(calls_after_next_batch(), 2);  // nothing was replayed
}

TEST_P(StoreDelivery, DeliveriesDueRunsAfterTheHandlersAndMayClaimAtOnce) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  std::atomic<bool> handler_ran{false};
  std::promise<std::pair<bool, std::size_t>> claimed_from_callback;
  // What the delivery service does: the callback claims (it only queues work for the writer).
  store.on_deliveries_due([&] {
    const bool after_handler = handler_ran.load();
    store.claim_due("w", 10, 30s, {}, [&, after_handler](std::vector<delivery_job> jobs, bool) {
      claimed_from_callback.set_value({after_handler, jobs.size()});
    });
  });
  store.accept(record_for(1, {"la-mps"}), [&](accept_result r) {
    EXPECT_EQ(r.outcome, accept_outcome::stored);
    handler_ran = true;
  });
  auto future = claimed_from_callback.get_future();
  const auto [after_handler, jobs] = wait_for(future, "claim from on_deliveries_due");
  EXPECT_TRUE(after_handler);
  EXPECT_EQ(jobs, 1U);
}

// ---------------------------------------------------------------------------------------------
// Failures

TEST_P(StoreDelivery, AfterStopBookkeepingIsAnsweredAtOnce) {
  test::temp_dir dir;
  manual_clock clock;
  auto opened = open(dir, clock);
  message_store& store = *opened;
  store.stop();

  std::optional<bool> claim_ok;
  store.claim_due("w", 10, 30s, {}, [&](std::vector<delivery_job> jobs, bool ok) {
    EXPECT_TRUE(jobs.empty());
    claim_ok = ok;
  });
  std::optional<bool> report_ok;
  store.report(attempt_report{make_id(1), "la-mps", "w"}, [&](bool ok) { report_ok = ok; });
  std::optional<std::pair<bool, bool>> replayed;
  store.replay(make_id(1), "la-mps", {}, [&](bool found, bool ok) { replayed = {found, ok}; });
  std::optional<bool> dead_ok;
  store.list_dead(10, [&](std::vector<dead_letter>, bool ok) { dead_ok = ok; });

  // All answered on this thread, before the calls returned.
  EXPECT_EQ(claim_ok, false);
  EXPECT_EQ(report_ok, false);
  EXPECT_EQ(replayed, std::make_pair(false, false));
  EXPECT_EQ(dead_ok, false);
}

TEST(SqliteDelivery, DiskFullRefusesTheAcceptsButKeepsTheReports) {
  test::temp_dir dir;
  manual_clock clock;
  const auto path = dir / "store.db";
  sqlite_options options = options_for(path, clock);
  options.max_size_bytes = 64 * 1024;
  sqlite_store store(options);
  ASSERT_EQ(accept_now(store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  const claimed got = claim_now(store, "w", 10);
  ASSERT_EQ(got.jobs.size(), 1U);
  // Fill the capped file with messages until one no longer fits.
  message_record big;
  for (int n = 100;; ++n) {
    ASSERT_LT(n, 200) << "the cap never filled";
    big = record_for(n, {});
    big.body = std::string(8 * 1024, 'x') + std::to_string(n);
    if (accept_now(store, big).outcome == accept_outcome::unavailable) {
      break;
    }
  }
  const std::uint64_t failed_before = store.stats().failed_batches;

  std::promise<accept_result> accepted;
  std::promise<bool> reported;
  {
    writer_gate gate(path);
    store.claim_due("w", 0, 30s, {}, {});  // a primer, alone in the first batch
    wait_until_writer_took_all(store);
    store.accept(big, [&](accept_result r) { accepted.set_value(std::move(r)); });
    store.report(delivered(got.jobs[0], "w", "r"), [&](bool ok) { reported.set_value(ok); });
  }
  auto accepted_future = accepted.get_future();
  auto reported_future = reported.get_future();
  const accept_result refused = wait_for(accepted_future, "accept");
  EXPECT_EQ(refused.outcome, accept_outcome::unavailable);
  EXPECT_EQ(refused.reason, "disk-full");
  EXPECT_TRUE(wait_for(reported_future, "report"));  // committed in a transaction of its own
  EXPECT_EQ(store.stats().failed_batches, failed_before + 1);
  EXPECT_EQ(find_now(store, make_id(1)).recipients.at(0).state, "delivered");
  EXPECT_TRUE(store.healthy());
}

// ---------------------------------------------------------------------------------------------
// Schema migration and reopen

/// The version-1 schema exactly as mxgw shipped it.
constexpr const char* version_1_schema = R"sql(
  CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    sender      TEXT NOT NULL,
    type        TEXT NOT NULL,
    created     TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    body        BLOB NOT NULL,
    state       TEXT NOT NULL DEFAULT 'accepted'
  );
  CREATE INDEX messages_by_sender ON messages (sender);
  PRAGMA user_version = 1;
)sql";

TEST(SqliteDelivery, AVersion1FileIsMigratedInPlace) {
  test::temp_dir dir;
  manual_clock clock;
  const auto path = dir / "store.db";
  const message_record old = record_for(1, {});
  {
    raw_db raw(path);
    raw.exec(version_1_schema);
    raw.exec(
        "INSERT INTO messages (id, sender, type, created, accepted_at, body_sha256, body) "
        "VALUES ('" +
        old.id +
        "', 'kh-cnp', 'victim.identification', "
        "'2026-11-22T04:38:47Z', '2026-01-02T03:04:05.678Z', '" +
        old.body_sha256 + "', '" + old.body + "')");
  }
  sqlite_store store(options_for(path, clock));
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), "18");
  EXPECT_EQ(std::to_string(sqlite_schema_version), "18");
  // Version 11: statistical facts; a message from before has none.
  EXPECT_EQ(raw_db(path).text("SELECT length(facts) FROM messages"), "0");
  // Version 5: claims read the covering index, which replaced deliveries_due; version 8: rows are
  // found by the message's position (no index by message id left); version 12: held copies are
  // listed from an index of their own (tests/store/release_test.cpp).
  EXPECT_EQ(raw_db(path).text("SELECT group_concat(name) FROM (SELECT name FROM sqlite_master "
                              "WHERE type = 'index' AND tbl_name = 'deliveries' ORDER BY name)"),
            "deliveries_by_message,deliveries_claim,deliveries_held");
  // Version 10: a claim reads each recipient's oldest due rows.
  EXPECT_EQ(raw_db(path).text("SELECT sql FROM sqlite_master WHERE name = 'deliveries_claim'"),
            "CREATE INDEX deliveries_claim ON deliveries (state, recipient, next_attempt_at)");
  EXPECT_EQ(raw_db(path).text("SELECT seq FROM messages"), "1");
  // Version 6: rows that predate it hand out their own payload.
  EXPECT_EQ(raw_db(path).text("SELECT count(*) FROM pragma_table_info('deliveries') "
                              "WHERE name = 'payload_is_body' AND dflt_value = '0'"),
            "1");
  // Versions 7 and 9: the audit log has no index by message id nor by partner, and messages none
  // by sender (no query used them).
  EXPECT_EQ(raw_db(path).text("SELECT count(*) FROM sqlite_master "
                              "WHERE type = 'index' AND tbl_name = 'audit'"),
            "0");
  EXPECT_EQ(raw_db(path).text("SELECT group_concat(name) FROM (SELECT name FROM sqlite_master "
                              "WHERE type = 'index' AND tbl_name = 'messages' ORDER BY name)"),
            "messages_by_seq,messages_expiring,messages_unpurged,sqlite_autoindex_messages_1");

  const message_status status = find_now(store, old.id);
  EXPECT_EQ(status.accepted_at, "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(status.state, "accepted");  // as version 1 stored it; no delivery rows invented
  EXPECT_TRUE(status.recipients.empty());
  const accept_result again = accept_now(store, old);
  EXPECT_EQ(again.outcome, accept_outcome::duplicate);
  EXPECT_EQ(again.accepted_at, "2026-01-02T03:04:05.678Z");

  ASSERT_EQ(accept_now(store, record_for(2, {"la-mps"})).outcome, accept_outcome::stored);
  EXPECT_EQ(claim_now(store, "w", 10).jobs.size(), 1U);
  EXPECT_EQ(count_messages(path), 2U);
  EXPECT_EQ(raw_db(path).text("SELECT group_concat(seq) FROM (SELECT seq FROM messages "
                              "ORDER BY rowid)"),
            "1,2");
}

/// Turns a file of the current version back into the layout of version 7 (deliveries keyed by
/// message id, no message positions, messages indexed by sender, the audit log by partner),
/// keeping every row and rowid: what a file written by that build looks like.
void downgrade_to_version_7(const std::filesystem::path& path) {
  raw_db db(path);
  db.exec(R"sql(
    BEGIN;
    DROP TABLE early_withdrawals; DROP TABLE person_keys;
    ALTER TABLE messages DROP COLUMN withdrawn_at;
    CREATE TABLE deliveries_v7 (
      message_id TEXT NOT NULL REFERENCES messages (id), recipient TEXT NOT NULL,
      decided_by TEXT NOT NULL, payload BLOB NOT NULL, withheld TEXT NOT NULL DEFAULT '[]',
      state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
      lease_owner TEXT, lease_expires INTEGER, last_error TEXT NOT NULL DEFAULT '',
      receipt TEXT NOT NULL DEFAULT '', delivered_at INTEGER, dead_since INTEGER,
      payload_is_body INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (message_id, recipient));
    INSERT INTO deliveries_v7 (rowid, message_id, recipient, decided_by, payload, withheld, state,
                               attempts, next_attempt_at, lease_owner, lease_expires, last_error,
                               receipt, delivered_at, dead_since, payload_is_body)
      SELECT rowid, message_id, recipient, decided_by, payload, withheld, state, attempts,
             next_attempt_at, lease_owner, lease_expires, last_error, receipt, delivered_at,
             dead_since, payload_is_body FROM deliveries;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v7 RENAME TO deliveries;
    CREATE INDEX deliveries_claim ON deliveries (state, next_attempt_at, recipient, lease_expires);
    DROP INDEX messages_by_seq;
    ALTER TABLE messages DROP COLUMN seq;
    ALTER TABLE messages DROP COLUMN facts;
    DROP INDEX messages_expiring;
    ALTER TABLE messages DROP COLUMN expires_at;
    CREATE INDEX messages_by_sender ON messages (sender);
    CREATE INDEX audit_by_partner ON audit (partner, seq) WHERE partner <> '';
    PRAGMA user_version = 7;
    COMMIT;
  )sql");
}

TEST(SqliteDelivery, AVersion7FileKeepsEveryDeliveryRowAndItsStateThroughTheMigration) {
  test::temp_dir dir;
  manual_clock clock;
  const auto path = dir / "store.db";
  std::string rows_before;
  constexpr const char* rows_sql =
      "SELECT group_concat(r, ';') FROM (SELECT rowid || ' ' || message_id || ' ' || recipient || "
      "' ' || state || ' ' || attempts || ' ' || hex(payload) || ' ' || coalesce(lease_owner, '-') "
      "AS r FROM deliveries ORDER BY rowid)";
  {
    sqlite_store store(options_for(path, clock));
    // Message 1: delivered to la-mps, dead for interpol; 2: leased to w; 3: pending.
    ASSERT_EQ(accept_now(store, record_for(1, {"la-mps", "interpol"})).outcome,
              accept_outcome::stored);
    claimed got = claim_now(store, "w", 10);
    ASSERT_EQ(got.jobs.size(), 2U);
    for (const auto& job : got.jobs) {
      ASSERT_TRUE(report_now(store, job.recipient == "la-mps" ? delivered(job, "w")
                                                              : dead(job, "w")));
    }
    ASSERT_EQ(accept_now(store, record_for(2, {"la-mps"})).outcome, accept_outcome::stored);
    ASSERT_EQ(claim_now(store, "w", 10).jobs.size(), 1U);
    ASSERT_EQ(accept_now(store, with_body_recipient(3, "interpol")).outcome,
              accept_outcome::stored);
  }
  downgrade_to_version_7(path);
  rows_before = raw_db(path).text(rows_sql);
  ASSERT_EQ(raw_db(path).text("SELECT count(*) FROM deliveries"), "5");

  sqlite_store store(options_for(path, clock));
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), "18");
  EXPECT_EQ(raw_db(path).text(rows_sql), rows_before);  // the same rows, rowids and bytes
  EXPECT_EQ(raw_db(path).text("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                              "name IN ('messages_by_sender', 'audit_by_partner')"),
            "0");  // version 9
  EXPECT_EQ(raw_db(path).text("SELECT count(*) FROM deliveries AS d JOIN messages AS m "
                              "ON m.seq = d.message_seq AND m.id = d.message_id"),
            "5");
  // Every way of finding a row by its message still finds it.
  EXPECT_EQ(recipient_of(find_now(store, make_id(1)), "la-mps")->state, "delivered");
  EXPECT_EQ(recipient_of(find_now(store, make_id(1)), "interpol")->state, "dead");
  EXPECT_EQ(replay_now(store, make_id(1), "interpol"), std::make_pair(true, true));
  delivery_job leased;
  leased.message_id = make_id(2);
  leased.recipient = "la-mps";
  EXPECT_TRUE(report_now(store, delivered(leased, "w")));
  EXPECT_EQ(recipient_of(find_now(store, make_id(2)), "la-mps")->state, "delivered");
  const claimed due = claim_now(store, "w2", 10);
  ASSERT_EQ(due.jobs.size(), 3U);  // the replayed dead letter and message 3's two rows
  for (const auto& job : due.jobs) {
    if (job.message_id == make_id(3) && job.recipient == "interpol") {
      EXPECT_EQ(job.payload, record_for(3, {}).body);
    }
  }
  // New messages continue the positions.
  ASSERT_EQ(accept_now(store, record_for(4, {"la-mps"})).outcome, accept_outcome::stored);
  EXPECT_EQ(raw_db(path).text("SELECT seq FROM messages WHERE id = '" + make_id(4) + "'"), "4");
}

TEST_P(StoreDelivery, EverythingSurvivesReopen) {
  test::temp_dir dir;
  manual_clock clock;
  const time_point accepted_at = clock.now();
  {
    auto opened = open(dir, clock);
  message_store& store = *opened;
    ASSERT_EQ(
        accept_now(store, record_for(1, {"a", "b", "c", "d"}, {{"x", "rule-1", "no"}})).outcome,
        accept_outcome::stored);
    const claimed got = claim_now(store, "w", 3, 30s, {"d"});  // d stays pending
    ASSERT_EQ(got.jobs.size(), 3U);
    std::map<std::string, delivery_job> by_recipient;
    for (const auto& job : got.jobs) {
      by_recipient[job.recipient] = job;
    }
    ASSERT_TRUE(report_now(store, delivered(by_recipient["a"], "w", "receipt-a")));
    ASSERT_TRUE(report_now(store, dead(by_recipient["b"], "w", "refused")));
    // c stays leased: the worker "dies" with it.
  }
  manual_clock later;
  later.set(accepted_at + 30s);  // c's lease has just run out
  auto opened = open(dir, later);
  message_store& store = *opened;
  const message_status status = find_now(store, make_id(1));
  EXPECT_EQ(status.state, "accepted");
  ASSERT_EQ(status.recipients.size(), 4U);
  EXPECT_EQ(recipient_of(status, "a")->state, "delivered");
  EXPECT_EQ(recipient_of(status, "a")->receipt, "receipt-a");
  EXPECT_EQ(recipient_of(status, "a")->delivered_at, accepted_at);
  EXPECT_EQ(recipient_of(status, "b")->state, "dead");
  EXPECT_EQ(recipient_of(status, "c")->state, "delivering");
  EXPECT_EQ(recipient_of(status, "d")->state, "pending");
  ASSERT_EQ(status.exclusions.size(), 1U);
  EXPECT_EQ(status.exclusions[0].partner, "x");
  ASSERT_EQ(list_dead_now(store, 10).size(), 1U);

  // At least once: the crashed worker's delivery is claimed again, with the pending one.
  const claimed after = claim_now(store, "w2", 10);
  ASSERT_EQ(after.jobs.size(), 2U);
  std::map<std::string, int> attempts;
  for (const auto& job : after.jobs) {
    attempts[job.recipient] = job.attempt;
  }
  EXPECT_EQ(attempts, (std::map<std::string, int>{{"c", 2}, {"d", 1}}));
}

}  // namespace
}  // namespace mxgw::store
