// `handling.expires` in the store, on every backend, plain and with encryption at rest
// (StoreExpiry): a message's expiry is stored at accept and handed out, to the millisecond, with
// every copy of it a claim or read_held gives, through retries, lease take-overs and releases; a
// message without one gives none; the store itself never withholds an expired copy (the delivery
// service decides). Migration of files and schemas from before (SqliteExpiry, PgExpiry).
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"
#include "gateway/store/pg_store.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/sealable_store_test.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

// ---------------------------------------------------------------------------------------------
// Time

std::int64_t ms_of(time_point t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// The time written in RFC 3339 (the tests' own constants: always valid).
time_point at(const char* rfc3339) {
  return parse_rfc3339(rfc3339).value();
}

/// An expiry as a test shows it: "unset", or the time to the millisecond and what lies below it
/// (so that two values that differ by less than a millisecond do not look alike).
std::string shown(const std::optional<time_point>& t) {
  if (!t) {
    return "unset";
  }
  const auto below_ms =
      t->time_since_epoch() - std::chrono::floor<std::chrono::milliseconds>(t->time_since_epoch());
  return format_rfc3339_ms(*t) + " +" +
         std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(below_ms).count()) +
         "ns";
}

/// The ends of three `handling.expires` days, and one already past when the tests' clock starts.
const time_point end_of_november = at("2026-11-30T23:59:59.999Z");
const time_point end_of_year = at("2026-12-31T23:59:59.999Z");
const time_point end_of_yesterday = at("2026-11-21T23:59:59.999Z");

// ---------------------------------------------------------------------------------------------
// Records

const std::string release_rule = "rule-four-eyes";

std::string body_of(int n) {
  return R"({"case":)" + std::to_string(n) + R"(,"handling":{"expires":"2026-11-30"}})";
}

std::string payload_of(int n, const std::string& recipient) {
  return R"({"case":)" + std::to_string(n) + R"(,"to":")" + recipient + R"("})";
}

/// A copy for `recipient` with a payload of its own, held by `hold` (empty: not held).
delivery_plan copy_for(int n, const std::string& recipient, const std::string& hold = {}) {
  delivery_plan plan{recipient, "explicit", payload_of(n, recipient), "[]"};
  plan.hold = hold;
  return plan;
}

/// A copy for `recipient` that is handed the message's body.
delivery_plan body_copy_for(const std::string& recipient) {
  delivery_plan plan{recipient, "rule-1", "", "[]"};
  plan.payload_is_body = true;
  return plan;
}

/// Message n with the copies and the expiry (unset: it does not expire).
message_record record_of(int n, std::vector<delivery_plan> copies,
                         std::optional<time_point> expires_at) {
  const std::string body = body_of(n);
  message_record record{
      make_id(n),        "kh-cnp", "victim.identification", "2026-11-22T04:38:47Z",
      fingerprint(body), body};
  record.deliveries = std::move(copies);
  record.expires_at = expires_at;
  return record;
}

/// The jobs by "message id/recipient".
std::map<std::string, delivery_job> by_copy(std::vector<delivery_job> jobs) {
  std::map<std::string, delivery_job> out;
  for (auto& job : jobs) {
    const std::string key = job.message_id + "/" + job.recipient;
    EXPECT_TRUE(out.emplace(key, std::move(job)).second) << key << " claimed twice";
  }
  return out;
}

/// The expiry of the job of message n's copy for `recipient` ("missing" when none was claimed).
std::string expiry_of(const std::map<std::string, delivery_job>& jobs, int n,
                      const std::string& recipient) {
  const auto found = jobs.find(make_id(n) + "/" + recipient);
  return found != jobs.end() ? shown(found->second.expires_at) : "missing";
}

// ---------------------------------------------------------------------------------------------
// Every backend, plain and sealed

class StoreExpiry : public sealable_store_test {
 protected:
  accept_outcome accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    return wait_for(f, "accept").outcome;
  }

  /// Claims with a lease of one minute.
  std::map<std::string, delivery_job> claim() {
    std::promise<std::vector<delivery_job>> p;
    auto f = p.get_future();
    store_->claim_due("worker", 100, 1min, {}, [&p](std::vector<delivery_job> jobs, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(jobs));
    });
    return by_copy(wait_for(f, "claim"));
  }

  /// Reports a failed attempt of the job, due again in a minute.
  bool report_retry(const delivery_job& job) {
    attempt_report report{job.message_id, job.recipient, "worker", attempt_result::retry};
    report.attempt = job.attempt;
    report.next_attempt_at = clock_.now() + 1min;
    report.error = "503";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(report), [&p](bool ok) { p.set_value(ok); });
    return wait_for(f, "report");
  }

  /// The held copy of message n for `recipient`, as read_held gives it (nullopt: none).
  std::optional<delivery_job> read_held(int n, const std::string& recipient) {
    std::promise<std::optional<delivery_job>> p;
    auto f = p.get_future();
    store_->read_held(make_id(n), recipient, [&p](std::optional<delivery_job> job, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(job));
    });
    return wait_for(f, "read_held");
  }

  /// Releases message n's held copy for `recipient` with one approval.
  release_outcome release(int n, const std::string& recipient) {
    release_request request;
    request.message_id = make_id(n);
    request.recipient = recipient;
    request.actor = "admin:ana";
    request.required = 1;
    request.audit = {.event = "replaced-by-the-store",
                     .actor = "admin:ana",
                     .partner = recipient,
                     .message_id = make_id(n),
                     .details = {{"rule", release_rule}}};
    std::promise<release_result> p;
    auto f = p.get_future();
    store_->decide_release(std::move(request), [&p](release_result r, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(r));
    });
    return wait_for(f, "decide_release").outcome;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreExpiry, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------------------------
// Claims

TEST_P(StoreExpiry, EachCopyIsClaimedWithItsMessagesExpiryOrNone) {
  // Three messages in one claim: two expiring on different days, one not at all; copies of their
  // own and a copy of the body, so no row's expiry can stand in for another's.
  ASSERT_EQ(
      accept(record_of(1, {copy_for(1, "la-mps"), body_copy_for("interpol")}, end_of_november)),
      accept_outcome::stored);
  ASSERT_EQ(accept(record_of(2, {copy_for(2, "la-mps"), body_copy_for("interpol")}, std::nullopt)),
            accept_outcome::stored);
  ASSERT_EQ(accept(record_of(3, {copy_for(3, "th-dsi")}, end_of_year)), accept_outcome::stored);

  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 5U);
  EXPECT_EQ(expiry_of(jobs, 1, "la-mps"), shown(end_of_november));
  EXPECT_EQ(expiry_of(jobs, 1, "interpol"), shown(end_of_november));
  EXPECT_EQ(expiry_of(jobs, 2, "la-mps"), "unset");
  EXPECT_EQ(expiry_of(jobs, 2, "interpol"), "unset");
  EXPECT_EQ(expiry_of(jobs, 3, "th-dsi"), shown(end_of_year));
  // The copies are otherwise handed out as ever (the body opened through encryption).
  EXPECT_EQ(jobs.at(make_id(1) + "/interpol").payload, body_of(1));
  EXPECT_EQ(jobs.at(make_id(3) + "/th-dsi").payload, payload_of(3, "th-dsi"));
}

TEST_P(StoreExpiry, TheExpiryIsKeptToTheMillisecondAndNeverLater) {
  // Below a millisecond is not kept: rounded down, so a copy never counts as valid for longer
  // than its message allows.
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps")}, end_of_november + 999us)),
            accept_outcome::stored);
  ASSERT_EQ(accept(record_of(2, {copy_for(2, "la-mps")}, end_of_november + 1ms)),
            accept_outcome::stored);

  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(expiry_of(jobs, 1, "la-mps"), shown(end_of_november));
  EXPECT_EQ(expiry_of(jobs, 2, "la-mps"), shown(at("2026-12-01T00:00:00.000Z")));
}

TEST_P(StoreExpiry, AnExpiredCopyIsStillHandedOutForTheDeliveryToDecide) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps")}, end_of_yesterday)),
            accept_outcome::stored);

  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(expiry_of(jobs, 1, "la-mps"), shown(end_of_yesterday));
  const auto& expires_at = jobs.begin()->second.expires_at;
  ASSERT_TRUE(expires_at.has_value());
  EXPECT_LT(ms_of(*expires_at), ms_of(clock_.now()));  // past, and handed out all the same
}

TEST_P(StoreExpiry, ARetryAndALeaseTakeOverKeepTheExpiry) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps")}, end_of_november)), accept_outcome::stored);
  ASSERT_EQ(accept(record_of(2, {copy_for(2, "la-mps")}, std::nullopt)), accept_outcome::stored);
  const auto first = claim();
  ASSERT_EQ(first.size(), 2U);
  for (const auto& [copy, job] : first) {
    ASSERT_TRUE(report_retry(job)) << copy;
  }

  // The same rows, claimed again when due.
  clock_.advance(2min);
  const auto second = claim();
  ASSERT_EQ(second.size(), 2U);
  EXPECT_EQ(second.at(make_id(1) + "/la-mps").attempt, 2);
  EXPECT_EQ(expiry_of(second, 1, "la-mps"), shown(end_of_november));
  EXPECT_EQ(expiry_of(second, 2, "la-mps"), "unset");

  // Not reported: taken over when the lease ran out.
  clock_.advance(2min);
  const auto third = claim();
  ASSERT_EQ(third.size(), 2U);
  EXPECT_EQ(third.at(make_id(1) + "/la-mps").attempt, 3);
  EXPECT_EQ(expiry_of(third, 1, "la-mps"), shown(end_of_november));
  EXPECT_EQ(expiry_of(third, 2, "la-mps"), "unset");
}

// ---------------------------------------------------------------------------------------------
// Held copies

TEST_P(StoreExpiry, AHeldCopyIsReadAndClaimedAfterItsReleaseWithItsExpiry) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "la-mps", release_rule)}, end_of_november)),
            accept_outcome::stored);
  ASSERT_EQ(accept(record_of(2, {copy_for(2, "la-mps", release_rule)}, std::nullopt)),
            accept_outcome::stored);
  EXPECT_TRUE(claim().empty());

  const auto expiring = read_held(1, "la-mps");
  ASSERT_TRUE(expiring.has_value());
  EXPECT_EQ(expiring->payload, payload_of(1, "la-mps"));
  EXPECT_EQ(shown(expiring->expires_at), shown(end_of_november));
  const auto lasting = read_held(2, "la-mps");
  ASSERT_TRUE(lasting.has_value());
  EXPECT_EQ(shown(lasting->expires_at), "unset");

  ASSERT_EQ(release(1, "la-mps"), release_outcome::released);
  ASSERT_EQ(release(2, "la-mps"), release_outcome::released);
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(expiry_of(jobs, 1, "la-mps"), shown(end_of_november));
  EXPECT_EQ(expiry_of(jobs, 2, "la-mps"), "unset");
}

// ---------------------------------------------------------------------------------------------
// Migration

/// Accepts the record on `store` and waits for the outcome.
accept_outcome accept_on(message_store& store, message_record record) {
  std::promise<accept_result> p;
  auto f = p.get_future();
  store.accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
  return wait_for(f, "accept").outcome;
}

std::map<std::string, delivery_job> claim_on(message_store& store) {
  std::promise<std::vector<delivery_job>> p;
  auto f = p.get_future();
  store.claim_due("w", 10, 1min, {}, [&p](std::vector<delivery_job> jobs, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(jobs));
  });
  return by_copy(wait_for(f, "claim"));
}

TEST(SqliteExpiry, AVersion12FileIsMigratedAndItsMessagesDoNotExpire) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options;
  options.path = path;
  options.busy_timeout_ms = 60000;
  {
    sqlite_store store(options);
    ASSERT_EQ(accept_on(store, record_of(1, {copy_for(1, "la-mps")}, std::nullopt)),
              accept_outcome::stored);
  }
  // Back to what version 12 left.
  raw_db(path).exec(R"sql(
    ALTER TABLE deliveries DROP COLUMN approvals_required;
    ALTER TABLE deliveries DROP COLUMN relies_on;
    DROP TABLE early_withdrawals; DROP TABLE person_keys;
    ALTER TABLE messages DROP COLUMN withdrawn_at;
    DROP INDEX messages_expiring;
    ALTER TABLE messages DROP COLUMN expires_at;
    PRAGMA user_version = 12;
  )sql");
  constexpr const char* new_column =
      "SELECT group_concat(type || ' ' || \"notnull\" || ' ' || coalesce(dflt_value, 'null')) "
      "FROM pragma_table_info('messages') WHERE name = 'expires_at'";
  ASSERT_EQ(raw_db(path).text(new_column), "");

  sqlite_store store(options);
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), "18");
  EXPECT_EQ(raw_db(path).text(new_column), "INTEGER 0 null");
  EXPECT_EQ(raw_db(path).text("SELECT coalesce(expires_at, 'null') FROM messages"), "null");

  // A new message keeps its expiry as ms since the epoch; the old one has none.
  ASSERT_EQ(accept_on(store, record_of(2, {copy_for(2, "la-mps")}, end_of_november)),
            accept_outcome::stored);
  EXPECT_EQ(raw_db(path).text("SELECT expires_at FROM messages WHERE id = '" + make_id(2) + "'"),
            std::to_string(ms_of(end_of_november)));
  const auto jobs = claim_on(store);
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(expiry_of(jobs, 1, "la-mps"), "unset");
  EXPECT_EQ(expiry_of(jobs, 2, "la-mps"), shown(end_of_november));
}

TEST(PgExpiry, AVersion8SchemaIsMigratedAndItsMessagesDoNotExpire) {
  if (pg_test_dsn().empty()) {
    GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
  }
  test::temp_dir dir;
  const pg_scratch_schema scratch(dir.path());
  const auto query = [&scratch](const std::string& sql) { return scratch.query(sql); };
  {
    auto store = open_postgres_store(pg_options_for(dir.path(), {}));
    ASSERT_EQ(accept_on(*store, record_of(1, {copy_for(1, "la-mps")}, std::nullopt)),
              accept_outcome::stored);
  }
  // Back to what version 8 left.
  query(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; "
      "DROP TABLE early_withdrawals; DROP TABLE person_keys; ALTER TABLE messages DROP COLUMN "
      "withdrawn_at, "
      "DROP COLUMN expires_at; UPDATE mxgw_schema SET version = 8");
  constexpr const char* new_column =
      "SELECT data_type || ' ' || is_nullable || ' ' || coalesce(column_default, 'null') "
      "FROM information_schema.columns WHERE table_schema = current_schema() "
      "AND table_name = 'messages' AND column_name = 'expires_at'";
  ASSERT_EQ(query(new_column), "");

  auto store = open_postgres_store(pg_options_for(dir.path(), {}));
  EXPECT_EQ(query("SELECT version FROM mxgw_schema"), "14");
  EXPECT_EQ(query(new_column), "bigint YES null");
  EXPECT_EQ(query("SELECT coalesce(expires_at::text, 'null') FROM messages"), "null");

  // A new message keeps its expiry as ms since the epoch; the old one has none.
  ASSERT_EQ(accept_on(*store, record_of(2, {copy_for(2, "la-mps")}, end_of_november)),
            accept_outcome::stored);
  EXPECT_EQ(query("SELECT expires_at FROM messages WHERE id = '" + make_id(2) + "'"),
            std::to_string(ms_of(end_of_november)));
  const auto jobs = claim_on(*store);
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(expiry_of(jobs, 1, "la-mps"), "unset");
  EXPECT_EQ(expiry_of(jobs, 2, "la-mps"), shown(end_of_november));
}

}  // namespace
}  // namespace mxgw::store
