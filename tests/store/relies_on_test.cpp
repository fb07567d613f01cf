// The agreements a copy relies on (delivery_plan::relies_on, the `relies_on` column) in the
// store, on every backend, plain and with encryption at rest (StoreReliesOn): stored at accept and
// handed out with every claim of the copy (its own payload or the body), through retries, replays
// of dead letters and releases of held copies, so the delivery service can check them before
// every attempt. Migration of files and schemas from before (SqliteReliesOn, PgReliesOn): the
// copies stored before that may carry victim data and can still go out are marked.
#include "gateway/store/message_store.hpp"
#include "gateway/store/pg_store.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/sealable_store_test.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

const std::vector<std::string> victim_data = {"victim-data"};
const std::string release_rule = "rule-four-eyes";

std::string body_of(int n) {
  return R"({"case":)" + std::to_string(n) + "}";
}

/// A copy for `recipient` with a payload of its own that relies on `relies_on`.
delivery_plan copy_for(int n, const std::string& recipient, std::vector<std::string> relies_on,
                       const std::string& hold = {}) {
  delivery_plan plan{recipient, "explicit", R"({"case":)" + std::to_string(n) + "}", "[]"};
  plan.hold = hold;
  plan.relies_on = std::move(relies_on);
  return plan;
}

/// A copy for `recipient` that is handed the message's body.
delivery_plan body_copy_for(const std::string& recipient, std::vector<std::string> relies_on) {
  delivery_plan plan{recipient, "rule-1", "", "[]"};
  plan.payload_is_body = true;
  plan.relies_on = std::move(relies_on);
  return plan;
}

/// Message n of `type` with `body` and the copies.
message_record record_of(int n, std::vector<delivery_plan> copies,
                         const std::string& type = "victim.identification",
                         const std::string& body = {}) {
  const std::string text = body.empty() ? body_of(n) : body;
  message_record record{make_id(n),        "vn-gialai", type, "2026-11-22T04:38:47Z",
                        fingerprint(text), text};
  record.deliveries = std::move(copies);
  return record;
}

/// What the jobs rely on, by "n/recipient": the agreements joined by ',' ("" for none).
std::map<std::string, std::string> relied_on(const std::vector<delivery_job>& jobs) {
  std::map<std::string, std::string> out;
  for (const auto& job : jobs) {
    const auto n = std::stoi(job.message_id.substr(job.message_id.size() - 12));
    out[std::to_string(n) + "/" + job.recipient] = relies_on_column(job.relies_on);
  }
  return out;
}

accept_outcome accept_on(message_store& store, message_record record) {
  std::promise<accept_result> p;
  auto f = p.get_future();
  store.accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
  return wait_for(f, "accept").outcome;
}

std::vector<delivery_job> claim_on(message_store& store) {
  std::promise<std::vector<delivery_job>> p;
  auto f = p.get_future();
  store.claim_due("worker", 100, 1min, {}, [&p](std::vector<delivery_job> jobs, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(jobs));
  });
  return wait_for(f, "claim");
}

// ---------------------------------------------------------------------------------------------
// Every backend, plain and sealed

class StoreReliesOn : public sealable_store_test {
 protected:
  accept_outcome accept(message_record record) { return accept_on(*store_, std::move(record)); }
  std::vector<delivery_job> claim() { return claim_on(*store_); }

  bool report(const delivery_job& job, attempt_result result) {
    attempt_report report{job.message_id, job.recipient, "worker", result};
    report.attempt = job.attempt;
    report.next_attempt_at = clock_.now() + 1min;
    report.error = "agreement-withdrawn";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(report), [&p](bool ok) { p.set_value(ok); });
    return wait_for(f, "report");
  }

  bool replay(const delivery_job& job) {
    std::promise<bool> p;
    auto f = p.get_future();
    store_->replay(job.message_id, job.recipient, {}, [&p](bool found, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(found);
    });
    return wait_for(f, "replay");
  }

  std::optional<delivery_job> read_held(int n, const std::string& recipient) {
    std::promise<std::optional<delivery_job>> p;
    auto f = p.get_future();
    store_->read_held(make_id(n), recipient, [&p](std::optional<delivery_job> job, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(job));
    });
    return wait_for(f, "read_held");
  }

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
                     .details = {}};
    std::promise<release_result> p;
    auto f = p.get_future();
    store_->decide_release(std::move(request), [&p](release_result r, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(r));
    });
    return wait_for(f, "decide_release").outcome;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreReliesOn, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST_P(StoreReliesOn, EachCopyIsClaimedWithWhatItReliesOnOrNothing) {
  // A full copy of its own and a full copy that is the body rely on the agreement; a copy with the
  // victim data withheld, and a body copy of a message without any, rely on nothing.
  ASSERT_EQ(accept(record_of(
                1, {copy_for(1, "kh-ratanakiri", victim_data), copy_for(1, "kh-stungtreng", {}),
                    body_copy_for("vn-thanhhoa", victim_data)})),
            accept_outcome::stored);
  ASSERT_EQ(accept(record_of(2, {body_copy_for("vn-thanhhoa", {})}, "person.wanted")),
            accept_outcome::stored);

  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 4U);
  EXPECT_EQ(relied_on(jobs), (std::map<std::string, std::string>{{"1/kh-ratanakiri", "victim-data"},
                                                                 {"1/kh-stungtreng", ""},
                                                                 {"1/vn-thanhhoa", "victim-data"},
                                                                 {"2/vn-thanhhoa", ""}}));
  for (const auto& job : jobs) {
    EXPECT_FALSE(job.payload.empty()) << job.recipient << ": handed out as ever";
  }
}

TEST_P(StoreReliesOn, ARetryAndAReplayedDeadLetterStillRelyOnTheAgreement) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "kh-ratanakiri", victim_data)})),
            accept_outcome::stored);
  auto first = claim();
  ASSERT_EQ(first.size(), 1U);
  ASSERT_TRUE(report(first[0], attempt_result::retry));

  clock_.advance(2min);
  auto second = claim();
  ASSERT_EQ(second.size(), 1U);
  EXPECT_EQ(relies_on_column(second[0].relies_on), "victim-data");
  ASSERT_TRUE(report(second[0], attempt_result::dead));
  EXPECT_TRUE(claim().empty());

  // Replayed by an administrator: handed out again with what it relies on, so the delivery
  // service meets the same check.
  ASSERT_TRUE(replay(second[0]));
  const auto third = claim();
  ASSERT_EQ(third.size(), 1U);
  EXPECT_EQ(third[0].attempt, 1);
  EXPECT_EQ(relies_on_column(third[0].relies_on), "victim-data");
}

TEST_P(StoreReliesOn, AHeldCopyIsReadAndClaimedAfterItsReleaseWithWhatItReliesOn) {
  ASSERT_EQ(accept(record_of(1, {copy_for(1, "kh-ratanakiri", victim_data, release_rule),
                                 copy_for(1, "kh-stungtreng", {}, release_rule)})),
            accept_outcome::stored);
  EXPECT_TRUE(claim().empty());

  const auto held = read_held(1, "kh-ratanakiri");
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(relies_on_column(held->relies_on), "victim-data");
  const auto withheld = read_held(1, "kh-stungtreng");
  ASSERT_TRUE(withheld.has_value());
  EXPECT_TRUE(withheld->relies_on.empty());

  ASSERT_EQ(release(1, "kh-ratanakiri"), release_outcome::released);
  ASSERT_EQ(release(1, "kh-stungtreng"), release_outcome::released);
  EXPECT_EQ(relied_on(claim()), (std::map<std::string, std::string>{
                                    {"1/kh-ratanakiri", "victim-data"}, {"1/kh-stungtreng", ""}}));
}

TEST(ReliesOnColumn, JoinsAndSplitsAgreementNames) {
  EXPECT_EQ(relies_on_column({}), "");
  EXPECT_EQ(relies_on_column({"victim-data"}), "victim-data");
  EXPECT_EQ(relies_on_column({"victim-data", "other"}), "victim-data,other");
  EXPECT_TRUE(relies_on_of("").empty());
  EXPECT_EQ(relies_on_of("victim-data"), victim_data);
  EXPECT_EQ(relies_on_of("victim-data,other"), (std::vector<std::string>{"victim-data", "other"}));
  EXPECT_EQ(relies_on_of(",victim-data,"), victim_data);
}

// ---------------------------------------------------------------------------------------------
// Migration: copies stored before the column

/// The messages of the migration tests, stored by a store of the current version (then turned
/// back): each with one copy for kh-ratanakiri, and what the migration must make of it.
struct old_copy {
  int n;
  std::string type;
  std::string body;
  std::string withheld;  ///< the copy's withheld list
  bool delivered;        ///< reported delivered before the migration
  bool sealed;           ///< accepted through the encryption at rest
  std::string expected;  ///< relies_on after the migration
};

const std::string victim_body =
    R"({"type":"victim.identification","body":{"person":{"names":[{"family":"X"}],)"
    R"("documents":[{"kind":"passport","number":"N1"}]},"narrative":"n"}})";
const std::string victim_without_victim_fields =
    R"({"type":"victim.identification","body":{"person":{"names":[{"family":"X"}],)"
    R"("documents":[{"kind":"passport"}]},"status":"presumed"}})";
const std::string tip_with_victim =
    R"({"type":"hotline.tip","body":{"summary":{"text":"s"},"subjects":[{"role":"suspect"},)"
    R"({"role":"possible-victim","person":{}}]}})";
const std::string tip_without_victim =
    R"({"type":"hotline.tip","body":{"summary":{"text":"s"},"subjects":[{"role":"suspect"}]}})";
const std::string withheld_for_no_agreement =
    R"([{"pointer":"/body/narrative","reason":"no-victim-data-agreement"}])";

std::vector<old_copy> old_copies() {
  return {
      // A full copy of a victim identification, queued: it may carry victim data.
      {1, "victim.identification", victim_body, "[]", false, false, "victim-data"},
      // The victim data was withheld from it: it relies on nothing.
      {2, "victim.identification", victim_body, withheld_for_no_agreement, false, false, ""},
      // Delivered: it goes nowhere any more.
      {3, "victim.identification", victim_body, "[]", true, false, ""},
      // Its body has no victim field at all.
      {4, "victim.identification", victim_without_victim_fields, "[]", false, false, ""},
      // A tip about a possible victim, and one about no victim.
      {5, "hotline.tip", tip_with_victim, "[]", false, false, "victim-data"},
      {6, "hotline.tip", tip_without_victim, "[]", false, false, ""},
      // Other types carry no field only agreement holders get.
      {7, "person.wanted", R"({"type":"person.wanted","body":{}})", "[]", false, false, ""},
      // A sealed body cannot be read: a victim identification's copy is marked.
      {8, "victim.identification", victim_without_victim_fields, "[]", false, true, "victim-data"},
  };
}

/// Stores the old copies on `plain` (and the sealed ones through the decorator over it).
void store_old_copies(const std::shared_ptr<message_store>& plain) {
  auto sealed = encrypt_at_rest(plain, one_key_ring());
  for (const auto& c : old_copies()) {
    delivery_plan plan{"kh-ratanakiri", "explicit", c.body, c.withheld};
    ASSERT_EQ(accept_on(c.sealed ? *sealed : *plain, record_of(c.n, {plan}, c.type, c.body)),
              accept_outcome::stored)
        << c.n;
  }
  for (const auto& job : claim_on(*plain)) {
    const auto n = std::stoi(job.message_id.substr(job.message_id.size() - 12));
    const bool delivered = old_copies()[static_cast<std::size_t>(n - 1)].delivered;
    attempt_report report{job.message_id, job.recipient, "worker",
                          delivered ? attempt_result::delivered : attempt_result::dead};
    report.attempt = job.attempt;
    report.error = delivered ? "" : "http-503";
    std::promise<bool> p;
    auto f = p.get_future();
    plain->report(std::move(report), [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(wait_for(f, "report"));
  }
}

std::string expected_relies_on() {
  std::string out;
  for (const auto& c : old_copies()) {
    out += std::to_string(c.n) + "=" + c.expected + ";";
  }
  return out;
}

TEST(SqliteReliesOn, AVersion16FileIsMigratedAndItsCopiesThatMayCarryVictimDataAreMarked) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options;
  options.path = path;
  options.busy_timeout_ms = 60000;
  {
    std::shared_ptr<message_store> store = open_sqlite_store(options);
    store_old_copies(store);
    store->stop();
  }
  // Back to what version 16 left.
  raw_db(path).exec(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; PRAGMA user_version = 16;");
  constexpr const char* new_column =
      "SELECT group_concat(type || ' ' || \"notnull\" || ' ' || coalesce(dflt_value, 'null')) "
      "FROM pragma_table_info('deliveries') WHERE name = 'relies_on'";
  ASSERT_EQ(raw_db(path).text(new_column), "");

  auto store = open_sqlite_store(options);
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), "18");
  EXPECT_EQ(raw_db(path).text(new_column), "TEXT 1 ''");
  EXPECT_EQ(raw_db(path).text("SELECT group_concat(n || '=' || relies_on || ';', '') FROM "
                              "(SELECT CAST(substr(message_id, 25) AS INTEGER) AS n, relies_on "
                              "FROM deliveries ORDER BY 1)"),
            expected_relies_on());

  // A new copy keeps what routing said it relies on.
  ASSERT_EQ(accept_on(*store, record_of(9, {copy_for(9, "kh-ratanakiri", victim_data)})),
            accept_outcome::stored);
  EXPECT_EQ(
      raw_db(path).text("SELECT relies_on FROM deliveries WHERE message_id = '" + make_id(9) + "'"),
      "victim-data");
  store->stop();
}

TEST(PgReliesOn, AVersion12SchemaIsMigratedAndItsCopiesThatMayCarryVictimDataAreMarked) {
  if (pg_test_dsn().empty()) {
    GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
  }
  test::temp_dir dir;
  const pg_scratch_schema scratch(dir.path());
  const auto query = [&scratch](const std::string& sql) { return scratch.query(sql); };
  {
    std::shared_ptr<message_store> store = open_postgres_store(pg_options_for(dir.path(), {}));
    store_old_copies(store);
    store->stop();
  }
  // Back to what version 12 left.
  query(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; UPDATE mxgw_schema SET version = 12");
  constexpr const char* new_column =
      "SELECT data_type || ' ' || is_nullable || ' ' || coalesce(column_default, 'null') "
      "FROM information_schema.columns WHERE table_schema = current_schema() "
      "AND table_name = 'deliveries' AND column_name = 'relies_on'";
  ASSERT_EQ(query(new_column), "");

  auto store = open_postgres_store(pg_options_for(dir.path(), {}));
  EXPECT_EQ(query("SELECT version FROM mxgw_schema"), "14");
  EXPECT_EQ(query(new_column), "text NO ''::text");
  EXPECT_EQ(query("SELECT string_agg(n || '=' || relies_on || ';', '' ORDER BY n) FROM "
                  "(SELECT substr(message_id, 25)::integer AS n, relies_on FROM deliveries) AS d"),
            expected_relies_on());

  ASSERT_EQ(accept_on(*store, record_of(9, {copy_for(9, "kh-ratanakiri", victim_data)})),
            accept_outcome::stored);
  EXPECT_EQ(query("SELECT relies_on FROM deliveries WHERE message_id = '" + make_id(9) + "'"),
            "victim-data");
  store->stop();
}

}  // namespace
}  // namespace mxgw::store
