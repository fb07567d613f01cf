// The approvals a held copy needs, as the store keeps them (the `approvals_required` column), on
// every backend, plain and with encryption at rest (StoreReleaseQuorum): recorded when the copy
// is held (from its plan, or from the store's approvals_when_held source) and asked for by every
// decision, however few the routing in force asks for then. Migration of files and schemas from
// before (SqliteReleaseQuorum, PgReleaseQuorum): copies held before get the figure of the routing
// stored then, or 5 when it is not known.
#include "gateway/store/message_store.hpp"
#include "gateway/store/pg_store.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/sealable_store_test.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace mxgw::store::test_helpers;

const std::string release_rule = "rule-four-eyes";

/// A copy of message n for `recipient`, held by the release rule unless `held` is false, that
/// records `approvals_required` (0: none of its own).
delivery_plan copy_for(int n, const std::string& recipient, std::size_t approvals_required,
                       bool held = true) {
  delivery_plan plan{recipient, "explicit", R"({"case":)" + std::to_string(n) + "}", "[]"};
  plan.hold = held ? release_rule : std::string();
  plan.approvals_required = approvals_required;
  return plan;
}

message_record record_of(int n, std::vector<delivery_plan> copies) {
  const std::string body = R"({"case":)" + std::to_string(n) + "}";
  message_record record{
      make_id(n),        "vn-gialai", "victim.identification", "2026-11-22T04:38:47Z",
      fingerprint(body), body};
  record.deliveries = std::move(copies);
  return record;
}

accept_outcome accept_on(message_store& store, message_record record) {
  std::promise<accept_result> p;
  auto f = p.get_future();
  store.accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
  return wait_for(f, "accept").outcome;
}

/// An approval of message n's copy for `recipient` by `actor` under a routing that asks for
/// `required`.
release_result approve_on(message_store& store, int n, const std::string& recipient,
                          const std::string& actor, std::size_t required) {
  release_request request;
  request.message_id = make_id(n);
  request.recipient = recipient;
  request.actor = actor;
  request.required = required;
  request.audit = {.event = "replaced-by-the-store",
                   .actor = actor,
                   .partner = recipient,
                   .message_id = make_id(n),
                   .details = {}};
  std::promise<release_result> p;
  auto f = p.get_future();
  store.decide_release(std::move(request), [&p](release_result r, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(r));
  });
  return wait_for(f, "decide_release");
}

std::vector<held_copy> held_on(message_store& store) {
  std::promise<std::vector<held_copy>> p;
  auto f = p.get_future();
  store.list_held(100, [&p](std::vector<held_copy> copies, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(copies));
  });
  return wait_for(f, "list_held");
}

// ---------------------------------------------------------------------------------------------
// Every backend, plain and sealed

class StoreReleaseQuorum : public sealable_store_test {};

INSTANTIATE_TEST_SUITE_P(Backends, StoreReleaseQuorum, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST_P(StoreReleaseQuorum, ACopyHeldUnderThreeApprovalsNeedsThreeWhenTheRoutingAsksForOne) {
  ASSERT_EQ(accept_on(*store_, record_of(1, {copy_for(1, "kh-ratanakiri", 3)})),
            accept_outcome::stored);
  const auto listed = held_on(*store_);
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].approvals_required, 3U);

  // Someone has lowered release.approvals to 1 since: the copy still needs three.
  auto first = approve_on(*store_, 1, "kh-ratanakiri", "admin:alice", 1);
  EXPECT_EQ(first.outcome, release_outcome::approved);
  EXPECT_EQ(first.required, 3U);
  EXPECT_EQ(approve_on(*store_, 1, "kh-ratanakiri", "admin:bob", 1).outcome,
            release_outcome::approved);
  auto third = approve_on(*store_, 1, "kh-ratanakiri", "admin:carol", 1);
  EXPECT_EQ(third.outcome, release_outcome::released);
  EXPECT_EQ(third.required, 3U);
  EXPECT_TRUE(held_on(*store_).empty());

  // The chain says so: 1/3, 2/3, 3/3.
  std::promise<std::vector<audit::audit_row>> p;
  auto f = p.get_future();
  store_->read_audit(0, 100, [&p](std::vector<audit::audit_row> rows, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(rows));
  });
  std::vector<std::string> counts;
  for (const auto& row : wait_for(f, "read_audit")) {
    const auto at = row.entry.find(R"("approvals":")");
    if (at != std::string::npos) {
      counts.push_back(row.entry.substr(at + 13, 3));
    }
  }
  EXPECT_EQ(counts, (std::vector<std::string>{"1/3", "2/3", "3/3"}));

  // A figure raised since a copy was held counts as well: the larger of the two.
  ASSERT_EQ(accept_on(*store_, record_of(2, {copy_for(2, "kh-ratanakiri", 1)})),
            accept_outcome::stored);
  auto raised = approve_on(*store_, 2, "kh-ratanakiri", "admin:alice", 2);
  EXPECT_EQ(raised.outcome, release_outcome::approved);
  EXPECT_EQ(raised.required, 2U);
}

TEST_P(StoreReleaseQuorum, ACopyWithoutItsOwnFigureRecordsWhatTheSourceSaysWhenItIsHeld) {
  std::size_t in_force = 2;
  store_->approvals_when_held([&in_force] { return in_force; });
  ASSERT_EQ(accept_on(*store_, record_of(1, {copy_for(1, "kh-ratanakiri", 0),
                                             copy_for(1, "vn-thanhhoa", 0, false)})),
            accept_outcome::stored);
  // The routing asks for 1 from now on: a copy held now records 1, the earlier one keeps 2.
  in_force = 1;
  ASSERT_EQ(accept_on(*store_, record_of(2, {copy_for(2, "kh-ratanakiri", 0)})),
            accept_outcome::stored);
  const auto listed = held_on(*store_);
  ASSERT_EQ(listed.size(), 2U);
  EXPECT_EQ(listed[0].approvals_required, 2U);
  EXPECT_EQ(listed[1].approvals_required, 1U);

  EXPECT_EQ(approve_on(*store_, 1, "kh-ratanakiri", "admin:alice", 1).outcome,
            release_outcome::approved);
  EXPECT_EQ(approve_on(*store_, 2, "kh-ratanakiri", "admin:alice", 1).outcome,
            release_outcome::released);
  EXPECT_EQ(approve_on(*store_, 1, "kh-ratanakiri", "admin:bob", 1).outcome,
            release_outcome::released);
  store_->approvals_when_held({});
}

// ---------------------------------------------------------------------------------------------
// Migration: copies held before the column

/// What the copies held before the migration must need, by the routing stored then.
struct stored_routing {
  const char* what;
  std::string value;  ///< the routing item's value; "-" for no routing item
  std::string expected;
};

std::vector<stored_routing> stored_routings() {
  return {
      {"a routing asking for 3", R"({"rules":[],"release":{"approvals":3,"rules":[]}})", "3"},
      {"a routing without release", R"({"rules":[]})", "2"},
      {"a release without approvals", R"({"rules":[],"release":{"rules":[]}})", "2"},
      {"no routing stored (files only)", "-", "5"},
      {"a deleted routing", "", "5"},
      {"a routing that does not parse", "{not json", "5"},
      {"approvals out of range", R"({"rules":[],"release":{"approvals":9}})", "5"},
  };
}

/// One held copy (message 1) and one that was not held (message 2), stored before the column.
void store_copies(message_store& store) {
  ASSERT_EQ(accept_on(store, record_of(1, {copy_for(1, "kh-ratanakiri", 0)})),
            accept_outcome::stored);
  ASSERT_EQ(accept_on(store, record_of(2, {copy_for(2, "kh-ratanakiri", 0, false)})),
            accept_outcome::stored);
}

std::string insert_routing(const std::string& value) {
  std::string quoted;
  for (const char c : value) {
    quoted += c == '\'' ? std::string("''") : std::string(1, c);
  }
  return "INSERT INTO state (kind, key, value, version, changed_at, changed_by) VALUES "
         "('routing', 'rules', '" +
         quoted + "', 1, '2026-12-01T00:00:00.000Z', 'admin:dev');";
}

TEST(SqliteReleaseQuorum, AVersion17FileGivesItsHeldCopiesTheFigureOfTheStoredRouting) {
  for (const auto& routing : stored_routings()) {
    SCOPED_TRACE(routing.what);
    test::temp_dir dir;
    const auto path = dir / "store.db";
    sqlite_options options;
    options.path = path;
    options.busy_timeout_ms = 60000;
    {
      std::shared_ptr<message_store> store = open_sqlite_store(options);
      store_copies(*store);
      store->stop();
    }
    // Back to what version 17 left, with the routing stored then.
    raw_db(path).exec(
        "ALTER TABLE deliveries DROP COLUMN approvals_required; PRAGMA user_version = 17; " +
        (routing.value == "-" ? std::string() : insert_routing(routing.value)));

    auto store = open_sqlite_store(options);
    EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), std::to_string(sqlite_schema_version));
    EXPECT_EQ(raw_db(path).text("SELECT group_concat(state || '=' || approvals_required, ';') "
                                "FROM (SELECT state, approvals_required FROM deliveries "
                                "ORDER BY message_id)"),
              "held=" + routing.expected + ";pending=0");
    store->stop();
  }
}

TEST(PgReleaseQuorum, AVersion13SchemaGivesItsHeldCopiesTheFigureOfTheStoredRouting) {
  if (pg_test_dsn().empty()) {
    GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
  }
  for (const auto& routing : stored_routings()) {
    SCOPED_TRACE(routing.what);
    test::temp_dir dir;
    const pg_scratch_schema scratch(dir.path());
    const auto query = [&scratch](const std::string& sql) { return scratch.query(sql); };
    {
      std::shared_ptr<message_store> store = open_postgres_store(pg_options_for(dir.path(), {}));
      store_copies(*store);
      store->stop();
    }
    // Back to what version 13 left, with the routing stored then.
    query(
        "ALTER TABLE deliveries DROP COLUMN approvals_required; "
        "UPDATE mxgw_schema SET version = 13; " +
        (routing.value == "-" ? std::string() : insert_routing(routing.value)));

    auto store = open_postgres_store(pg_options_for(dir.path(), {}));
    EXPECT_EQ(query("SELECT version FROM mxgw_schema"), std::to_string(postgres_schema_version));
    EXPECT_EQ(query("SELECT string_agg(state || '=' || approvals_required, ';' "
                    "ORDER BY message_id) FROM deliveries"),
              "held=" + routing.expected + ";pending=0");
    store->stop();
  }
}

}  // namespace
}  // namespace mxgw::store
