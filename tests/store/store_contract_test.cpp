// The store contract: behaviour every message_store must show, whichever database is behind it.
// Each test runs once per backend (SQLite always; PostgreSQL when MXGW_TEST_PG_DSN is set, see
// store_backends.hpp). Delivery-row behaviour is in delivery_test.cpp, run per backend the same way.
#include "gateway/store/message_store.hpp"

#include "gateway/audit/audit.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/log.hpp"
#include "gateway/store/pg_store.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace mxgw::store::test_helpers;

template <typename T>
T wait_for(std::future<T>& future, const char* what) {
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << what << ": handler not called";
    return T{};
  }
  return future.get();
}

class StoreContract : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override {
    if (const auto reason = unavailable_reason(GetParam()); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
    store_ = GetParam().open(dir_.path(), {});
  }
  void TearDown() override {
    store_.reset();
    if (GetParam().cleanup && unavailable_reason(GetParam()).empty()) {
      GetParam().cleanup(dir_.path());
    }
  }
  void reopen() {
    store_->stop();
    store_.reset();
    store_ = GetParam().open(dir_.path(), {});
  }
  std::pair<std::optional<message_status>, bool> find(const std::string& id) {
    std::promise<std::pair<std::optional<message_status>, bool>> p;
    auto f = p.get_future();
    store_->find(id, [&p](std::optional<message_status> status, bool ok) {
      p.set_value({std::move(status), ok});
    });
    return wait_for(f, "find");
  }

  accept_result accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    return wait_for(f, "accept");
  }
  bool append(std::vector<audit::audit_record> records) {
    std::promise<bool> p;
    auto f = p.get_future();
    store_->append_audit(std::move(records), [&p](bool ok) { p.set_value(ok); });
    return wait_for(f, "append_audit");
  }
  std::vector<audit::audit_row> read(std::int64_t after = 0, std::size_t limit = 1000) {
    std::promise<std::pair<std::vector<audit::audit_row>, bool>> p;
    auto f = p.get_future();
    store_->read_audit(after, limit, [&p](std::vector<audit::audit_row> rows, bool ok) {
      p.set_value({std::move(rows), ok});
    });
    auto [rows, ok] = wait_for(f, "read_audit");
    EXPECT_TRUE(ok);
    return rows;
  }
  std::pair<put_outcome, std::int64_t> put(state_item item, std::optional<std::int64_t> expected,
                                           std::vector<audit::audit_record> audit = {}) {
    std::promise<std::pair<put_outcome, std::int64_t>> p;
    auto f = p.get_future();
    store_->put_state(std::move(item), expected, std::move(audit),
                      [&p](put_outcome o, std::int64_t v) { p.set_value({o, v}); });
    return wait_for(f, "put_state");
  }
  std::pair<put_outcome, std::vector<std::int64_t>> put_all(
      std::vector<state_put> puts, std::vector<audit::audit_record> audit = {}) {
    std::promise<std::pair<put_outcome, std::vector<std::int64_t>>> p;
    auto f = p.get_future();
    store_->put_states(std::move(puts), std::move(audit),
                       [&p](put_outcome o, std::vector<std::int64_t> v) {
                         p.set_value({o, std::move(v)});
                       });
    return wait_for(f, "put_states");
  }
  /// Makes every later write of a state item of `kind` fail in the database itself (a trigger),
  /// as a store failure part-way through a transaction would.
  void fail_state_writes_of(const std::string& kind) {
    if (GetParam().name == "sqlite") {
      raw_db(dir_.path() / "store.db")
          .exec("CREATE TRIGGER refuse_" + kind + " BEFORE INSERT ON state WHEN NEW.kind = '" +
                kind + "' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    } else {
      pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) +
              "; CREATE FUNCTION refuse_state() RETURNS trigger LANGUAGE plpgsql AS "
              "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; "
              "CREATE TRIGGER refuse_state BEFORE INSERT OR UPDATE ON state FOR EACH ROW "
              "WHEN (NEW.kind = '" +
              kind + "') EXECUTE FUNCTION refuse_state()");
    }
  }
  std::vector<state_item> list(const std::string& kind, std::int64_t after = 0) {
    std::promise<std::pair<std::vector<state_item>, bool>> p;
    auto f = p.get_future();
    store_->list_state(kind, after, [&p](std::vector<state_item> items, bool ok) {
      p.set_value({std::move(items), ok});
    });
    auto [items, ok] = wait_for(f, "list_state");
    EXPECT_TRUE(ok);
    return items;
  }

  test::temp_dir dir_;
  std::unique_ptr<message_store> store_;
};

audit::audit_record event(std::string name, std::string message = {}) {
  return {.event = std::move(name),
          .actor = "partner:kh-ratanakiri",
          .partner = "kh-ratanakiri",
          .message_id = std::move(message),
          .details = {{"type", "victim.identification"}, {"recipients", "2"}}};
}

message_record record_with_audit(const std::string& id, const std::string& body) {
  message_record r{id, "kh-ratanakiri", "victim.identification", "2026-11-22T04:38:47Z",
                   fingerprint(body), body};
  r.deliveries.push_back({"vn-thanhhoa", "explicit", body, "[]"});
  r.audit.push_back(event("message.accepted", id));
  return r;
}

/// Every row hashes its own bytes and names the previous row's hash; seqs run 1, 2, 3, ...
void expect_linked(const std::vector<audit::audit_row>& rows) {
  std::string prev(audit::genesis_hash());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    EXPECT_EQ(row.seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(row.hash, sha256_hex(row.entry)) << "entry " << row.seq;
    EXPECT_NE(row.entry.find("\"prev\":\"" + prev + "\""), std::string::npos) << row.entry;
    EXPECT_NE(row.entry.find("\"seq\":" + std::to_string(row.seq) + ","), std::string::npos);
    prev = row.hash;
  }
}

TEST_P(StoreContract, AuditEntriesFormOneChainInOrder) {
  ASSERT_TRUE(append({event("message.refused"), event("admin.login")}));
  ASSERT_TRUE(append({event("cert.revoked")}));
  const auto rows = read();
  ASSERT_EQ(rows.size(), 3U);
  EXPECT_EQ(rows[0].event, "message.refused");
  EXPECT_EQ(rows[1].event, "admin.login");
  EXPECT_EQ(rows[2].event, "cert.revoked");
  EXPECT_EQ(rows[2].actor, "partner:kh-ratanakiri");
  EXPECT_EQ(rows[2].partner, "kh-ratanakiri");
  EXPECT_EQ(rows[0].entry,
            audit::entry_bytes(1, rows[0].at, event("message.refused"), audit::genesis_hash()));
  expect_linked(rows);
  // Paging.
  const auto tail = read(1, 1);
  ASSERT_EQ(tail.size(), 1U);
  EXPECT_EQ(tail[0].seq, 2);
}

TEST_P(StoreContract, AcceptCarriesItsAuditOnlyWhenStored) {
  const std::string id = make_id(1);
  EXPECT_EQ(accept(record_with_audit(id, "{\"a\":1}")).outcome, accept_outcome::stored);
  EXPECT_EQ(accept(record_with_audit(id, "{\"a\":1}")).outcome, accept_outcome::duplicate);
  EXPECT_EQ(accept(record_with_audit(id, "{\"a\":2}")).outcome, accept_outcome::conflict);
  const auto rows = read();
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].event, "message.accepted");
  EXPECT_EQ(rows[0].message_id, id);
}

TEST_P(StoreContract, ReportCarriesItsAuditOnlyWhenItTookEffect) {
  const std::string id = make_id(2);
  ASSERT_EQ(accept(record_with_audit(id, "{}")).outcome, accept_outcome::stored);
  std::promise<std::vector<delivery_job>> claimed;
  auto cf = claimed.get_future();
  store_->claim_due("worker-a", 10, std::chrono::minutes(1), {},
                    [&claimed](std::vector<delivery_job> jobs, bool) {
                      claimed.set_value(std::move(jobs));
                    });
  ASSERT_EQ(wait_for(cf, "claim").size(), 1U);

  const auto report = [&](const std::string& owner) {
    attempt_report r;
    r.message_id = id;
    r.recipient = "vn-thanhhoa";
    r.owner = owner;
    r.attempt = 1;
    r.result = attempt_result::delivered;
    r.receipt = "{}";
    r.audit.push_back(event("delivery.delivered", id));
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
    return wait_for(f, "report");
  };
  EXPECT_TRUE(report("worker-b"));  // not the lease holder: ignored, and not audited
  EXPECT_EQ(read().size(), 1U);
  EXPECT_TRUE(report("worker-a"));
  const auto rows = read();
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[1].event, "delivery.delivered");
  expect_linked(rows);
}

TEST_P(StoreContract, AuditHeadAndChainSurviveReopen) {
  ASSERT_TRUE(append({event("one"), event("two")}));
  reopen();
  ASSERT_TRUE(append({event("three")}));
  const auto rows = read();
  ASSERT_EQ(rows.size(), 3U);
  expect_linked(rows);

  std::promise<std::optional<audit::audit_row>> p;
  auto f = p.get_future();
  store_->audit_head([&p](std::optional<audit::audit_row> head, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(head));
  });
  const auto head = wait_for(f, "audit_head");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->seq, 3);
  EXPECT_EQ(head->hash, rows[2].hash);
}

TEST_P(StoreContract, EmptyChainHasNoHead) {
  std::promise<std::pair<bool, bool>> p;
  auto f = p.get_future();
  store_->audit_head([&p](std::optional<audit::audit_row> head, bool ok) {
    p.set_value({head.has_value(), ok});
  });
  const auto [has, ok] = wait_for(f, "audit_head");
  EXPECT_TRUE(ok);
  EXPECT_FALSE(has);
}

TEST_P(StoreContract, OneCheckpointPerSeq) {
  ASSERT_TRUE(append({event("one")}));
  const auto add = [&](std::string signature) {
    std::promise<bool> p;
    auto f = p.get_future();
    store_->add_checkpoint({1, read()[0].hash, "2026-11-22T00:00:00.000Z", "ab", signature},
                           [&p](bool ok) { p.set_value(ok); });
    return wait_for(f, "add_checkpoint");
  };
  EXPECT_TRUE(add("c2lnbmF0dXJl"));
  EXPECT_FALSE(add("b3RoZXI="));
  std::promise<std::vector<audit::checkpoint>> p;
  auto f = p.get_future();
  store_->read_checkpoints([&p](std::vector<audit::checkpoint> c, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(c));
  });
  const auto checkpoints = wait_for(f, "read_checkpoints");
  ASSERT_EQ(checkpoints.size(), 1U);
  EXPECT_EQ(checkpoints[0].signature, "c2lnbmF0dXJl");
  EXPECT_TRUE(append({event("two")}));  // the refused checkpoint did not break the writer
}

TEST_P(StoreContract, StateVersionsAreStoreWideAndIncreasing) {
  const auto [o1, v1] = put({"partner", "kh-stungtreng", R"({"enabled":true})", 0, "", "admin:an"},
                            std::nullopt);
  const auto [o2, v2] = put({"certificate", "0a1b", R"({"state":"active"})", 0, "", "admin:an"},
                            std::nullopt);
  const auto [o3, v3] = put({"partner", "kh-stungtreng", R"({"enabled":false})", 0, "", "admin:an"},
                            std::nullopt);
  EXPECT_EQ(o1, put_outcome::applied);
  EXPECT_EQ(o2, put_outcome::applied);
  EXPECT_EQ(o3, put_outcome::applied);
  EXPECT_LT(v1, v2);
  EXPECT_LT(v2, v3);

  const auto partners = list("partner");
  ASSERT_EQ(partners.size(), 1U);  // the latest of each item only
  EXPECT_EQ(partners[0].value, R"({"enabled":false})");
  EXPECT_EQ(partners[0].version, v3);
  EXPECT_EQ(partners[0].changed_by, "admin:an");
  EXPECT_FALSE(partners[0].changed_at.empty());

  const auto since = list("", v1);
  ASSERT_EQ(since.size(), 2U);
  EXPECT_EQ(since[0].kind, "certificate");
  EXPECT_EQ(since[1].kind, "partner");
  EXPECT_TRUE(list("", v3).empty());
}

TEST_P(StoreContract, StateCompareAndSet) {
  const auto [created, v1] =
      put({"partner", "la-houaphanh", "{}", 0, "", "admin:an"}, std::int64_t{0});
  ASSERT_EQ(created, put_outcome::applied);
  // Creating again with "must not exist" conflicts and reports the current version.
  const auto [again, current] =
      put({"partner", "la-houaphanh", R"({"x":1})", 0, "", "admin:bo"}, std::int64_t{0});
  EXPECT_EQ(again, put_outcome::conflict);
  EXPECT_EQ(current, v1);
  // A stale version conflicts; the right one applies.
  EXPECT_EQ(put({"partner", "la-houaphanh", "{}", 0, "", "admin:bo"}, v1 + 100).first,
            put_outcome::conflict);
  const auto [updated, v2] = put({"partner", "la-houaphanh", R"({"y":2})", 0, "", "admin:bo"}, v1,
                                 {event("partner.updated")});
  EXPECT_EQ(updated, put_outcome::applied);
  EXPECT_EQ(list("partner")[0].value, R"({"y":2})");
  // Deleting leaves a tombstone (empty value) that pollers see; "must not exist" matches it.
  EXPECT_EQ(put({"partner", "la-houaphanh", "", 0, "", "admin:bo"}, v2).first,
            put_outcome::applied);
  const auto after_delete = list("partner", v2);
  ASSERT_EQ(after_delete.size(), 1U);
  EXPECT_TRUE(after_delete[0].value.empty());
  EXPECT_EQ(put({"partner", "la-houaphanh", "{}", 0, "", "admin:bo"}, std::int64_t{0}).first,
            put_outcome::applied);
  // Only the applied update carried an audit entry (a conflict writes nothing).
  const auto rows = read();
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].event, "partner.updated");
}

// A certificate rotation is three kinds of item (the new record, the partner's cut-off, each
// earlier record made retiring): put together, all of them are stored or none is.
TEST_P(StoreContract, SeveralStatePutsAreStoredTogetherOrNotAtAll) {
  const auto [created, v_old] =
      put({"certificate", "0a", R"({"state":"active"})", 0, "", "admin:an"}, std::int64_t{0});
  ASSERT_EQ(created, put_outcome::applied);
  const auto rotation = [&](std::int64_t old_version) {
    return std::vector<state_put>{
        {{"certificate", "0b", R"({"state":"active"})", 0, "", "admin:an"}, std::int64_t{0}},
        {{"cutoff", "kh-stungtreng", R"({"cutoffs":[]})", 0, "", "admin:an"}, std::nullopt},
        {{"certificate", "0a", R"({"state":"retiring"})", 0, "", "admin:an"}, old_version}};
  };
  const std::vector<audit::audit_record> audit{event("cert.enrolled"), event("cert.cutoff"),
                                               event("cert.rotated")};

  // The last put's expected version is stale: none of the items and none of the audit records
  // is stored, and the handler gets each item's current version.
  const auto [stale, current] = put_all(rotation(v_old + 100), audit);
  EXPECT_EQ(stale, put_outcome::conflict);
  EXPECT_EQ(current, (std::vector<std::int64_t>{0, 0, v_old}));
  ASSERT_EQ(list("certificate").size(), 1U);
  EXPECT_EQ(list("certificate")[0].value, R"({"state":"active"})");
  EXPECT_EQ(list("certificate")[0].version, v_old);
  EXPECT_TRUE(list("cutoff").empty());
  EXPECT_TRUE(read().empty());

  // With the right version all three are stored, with increasing versions, in the order given,
  // and the three audit records with them.
  const auto [applied, versions] = put_all(rotation(v_old), audit);
  ASSERT_EQ(applied, put_outcome::applied);
  ASSERT_EQ(versions.size(), 3U);
  EXPECT_LT(v_old, versions[0]);
  EXPECT_LT(versions[0], versions[1]);
  EXPECT_LT(versions[1], versions[2]);
  const auto items = list("", v_old);
  ASSERT_EQ(items.size(), 3U);
  EXPECT_EQ(items[0].key, "0b");
  EXPECT_EQ(items[0].version, versions[0]);
  EXPECT_EQ(items[1].kind, "cutoff");
  EXPECT_EQ(items[1].version, versions[1]);
  EXPECT_EQ(items[2].key, "0a");
  EXPECT_EQ(items[2].value, R"({"state":"retiring"})");
  EXPECT_EQ(items[2].version, versions[2]);
  const auto rows = read();
  ASSERT_EQ(rows.size(), 3U);
  EXPECT_EQ(rows[0].event, "cert.enrolled");
  EXPECT_EQ(rows[2].event, "cert.rotated");
  expect_linked(rows);

  // Replaying the same rotation now conflicts on its first put ("must not exist"): nothing more.
  EXPECT_EQ(put_all(rotation(versions[2]), audit).first, put_outcome::conflict);
  EXPECT_EQ(list("", versions[2]).size(), 0U);
  EXPECT_EQ(read().size(), 3U);
}

TEST_P(StoreContract, SeveralStatePutsStoreNothingWhenTheStoreFailsPartWay) {
  fail_state_writes_of("cutoff");
  const auto [outcome, versions] =
      put_all({{{"certificate", "0b", R"({"state":"active"})", 0, "", "admin:an"}, std::int64_t{0}},
               {{"cutoff", "kh-stungtreng", R"({"cutoffs":[]})", 0, "", "admin:an"}, std::nullopt}},
              {event("cert.enrolled"), event("cert.cutoff")});
  EXPECT_EQ(outcome, put_outcome::failed);
  EXPECT_TRUE(versions.empty());
  EXPECT_TRUE(list("").empty());  // the certificate put before the failing one is gone too
  EXPECT_TRUE(read().empty());
  // The store goes on: a later put of another kind is stored.
  EXPECT_EQ(put({"certificate", "0b", "{}", 0, "", "admin:an"}, std::int64_t{0}).first,
            put_outcome::applied);
}

TEST_P(StoreContract, SeveralStatePutsNamingOneItemTwiceOrNoneStoreNothing) {
  const auto [twice, versions] =
      put_all({{{"partner", "la-mps", R"({"a":1})", 0, "", "admin:an"}, std::nullopt},
               {{"partner", "la-mps", R"({"a":2})", 0, "", "admin:an"}, std::nullopt}},
              {event("partner.updated")});
  EXPECT_EQ(twice, put_outcome::failed);
  EXPECT_TRUE(versions.empty());
  EXPECT_EQ(put_all({}, {event("partner.updated")}).first, put_outcome::failed);
  EXPECT_TRUE(list("").empty());
  EXPECT_TRUE(read().empty());
}

// A newer mxgw migrated the store while this build runs (another instance upgraded first, or
// a command of the newer build): this build writes nothing more, says why, and stops.
TEST_P(StoreContract, AStoreMigratedByANewerBuildIsNeverWrittenAgain) {
  const auto log_file = dir_.path() / "log.jsonl";
  log::init({log::level::info, log_file});
  ASSERT_EQ(accept(record_with_audit(make_id(1), "{\"a\":1}")).outcome, accept_outcome::stored);
  const auto count_messages = [this] {
    return GetParam().name == "sqlite"
               ? raw_db(dir_.path() / "store.db").text("SELECT count(*) FROM messages")
               : pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) +
                         "; SELECT count(*) FROM messages");
  };
  if (GetParam().name == "sqlite") {
    raw_db(dir_.path() / "store.db")
        .exec("PRAGMA user_version = " + std::to_string(sqlite_schema_version + 1));
  } else {
    pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) +
            "; DELETE FROM mxgw_schema; INSERT INTO mxgw_schema (version) VALUES (" +
            std::to_string(postgres_schema_version + 1) + ")");
  }
  const accept_result refused = accept(record_with_audit(make_id(2), "{\"a\":2}"));
  EXPECT_EQ(refused.outcome, accept_outcome::unavailable);
  EXPECT_EQ(refused.reason, "schema-newer");
  EXPECT_FALSE(store_->healthy());
  // Every later write is refused the same way, without reaching the database.
  const accept_result again = accept(record_with_audit(make_id(3), "{\"a\":3}"));
  EXPECT_EQ(again.outcome, accept_outcome::unavailable);
  EXPECT_EQ(again.reason, "schema-newer");
  EXPECT_FALSE(append({event("admin.login")}));
  EXPECT_EQ(count_messages(), "1");
  store_->stop();
  log::init({});
  const std::string logged = test::read_file(log_file);
  EXPECT_NE(logged.find("\"event\":\"store.fail_stop\""), std::string::npos) << logged;
  EXPECT_NE(logged.find("\"reason\":\"schema-newer\""), std::string::npos) << logged;
  EXPECT_NE(logged.find("is newer than this build of mxgw knows"), std::string::npos) << logged;
}

TEST_P(StoreContract, StateSurvivesReopen) {
  ASSERT_EQ(put({"routing", "rules", R"({"rules":[]})", 0, "", "admin:an"}, std::nullopt).first,
            put_outcome::applied);
  reopen();
  const auto items = list("routing");
  ASSERT_EQ(items.size(), 1U);
  EXPECT_EQ(items[0].value, R"({"rules":[]})");
}

TEST_P(StoreContract, AfterStopAuditAndStateFail) {
  store_->stop();
  EXPECT_FALSE(append({event("late")}));
  EXPECT_EQ(put({"partner", "x", "{}", 0, "", "admin:an"}, std::nullopt).first,
            put_outcome::failed);
  EXPECT_EQ(put_all({{{"partner", "x", "{}", 0, "", "admin:an"}, std::nullopt}}).first,
            put_outcome::failed);
  std::promise<bool> p;
  auto f = p.get_future();
  store_->read_audit(0, 10, [&p](std::vector<audit::audit_row>, bool ok) { p.set_value(ok); });
  EXPECT_FALSE(wait_for(f, "read_audit"));
}

TEST_P(StoreContract, DeadLettersReplayDiscardAndQueueStats) {
  // Two messages to vn-thanhhoa; both attempts end dead.
  for (int n : {10, 11}) {
    ASSERT_EQ(accept(record_with_audit(make_id(n), "{}")).outcome, accept_outcome::stored);
  }
  std::promise<std::vector<delivery_job>> claimed;
  auto cf = claimed.get_future();
  store_->claim_due("w", 10, std::chrono::minutes(1), {},
                    [&claimed](std::vector<delivery_job> jobs, bool) {
                      claimed.set_value(std::move(jobs));
                    });
  const auto jobs = wait_for(cf, "claim");
  ASSERT_EQ(jobs.size(), 2U);
  for (const auto& job : jobs) {
    attempt_report r;
    r.message_id = job.message_id;
    r.recipient = job.recipient;
    r.owner = "w";
    r.attempt = job.attempt;
    r.result = attempt_result::dead;
    r.error = "http-400";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(wait_for(f, "report"));
  }
  const auto stats = [&] {
    std::promise<std::vector<queue_stat>> p;
    auto f = p.get_future();
    store_->queue_stats([&p](std::vector<queue_stat> s, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(s));
    });
    return wait_for(f, "queue_stats");
  };
  auto before = stats();
  ASSERT_EQ(before.size(), 1U);
  EXPECT_EQ(before[0].recipient, "vn-thanhhoa");
  EXPECT_EQ(before[0].dead, 2U);
  EXPECT_EQ(before[0].pending, 0U);
  EXPECT_TRUE(before[0].oldest_waiting.empty());

  const auto replay_or_discard = [&](bool discard, const std::string& id) {
    std::promise<std::pair<bool, bool>> p;
    auto f = p.get_future();
    std::vector<audit::audit_record> audit{event(discard ? "delivery.discarded" : "delivery.replayed", id)};
    auto handler = [&p](bool found, bool ok) { p.set_value({found, ok}); };
    if (discard) {
      store_->discard(id, "vn-thanhhoa", "wrong recipient", std::move(audit), handler);
    } else {
      store_->replay(id, "vn-thanhhoa", std::move(audit), handler);
    }
    return wait_for(f, "replay/discard");
  };
  EXPECT_EQ(replay_or_discard(false, make_id(10)), std::make_pair(true, true));
  EXPECT_EQ(replay_or_discard(true, make_id(11)), std::make_pair(true, true));
  // Neither is dead any more: a second replay or discard finds nothing and audits nothing.
  EXPECT_EQ(replay_or_discard(false, make_id(11)), std::make_pair(false, true));
  EXPECT_EQ(replay_or_discard(true, make_id(10)), std::make_pair(false, true));

  auto after = stats();
  ASSERT_EQ(after.size(), 1U);
  EXPECT_EQ(after[0].dead, 0U);
  EXPECT_EQ(after[0].pending, 1U);
  EXPECT_EQ(after[0].discarded, 1U);
  EXPECT_FALSE(after[0].oldest_waiting.empty());

  std::vector<std::string> events;
  for (const auto& row : read()) {
    events.push_back(row.event);
  }
  EXPECT_EQ(events, (std::vector<std::string>{"message.accepted", "message.accepted",
                                              "delivery.replayed", "delivery.discarded"}));
}

// ---------------------------------------------------------------------------------------------
// Outcomes and idempotency (moved here from sqlite_store_test.cpp: every backend must show them)

message_record plain_record(const std::string& id, const std::string& sender = "kh-cnp",
                            const std::string& body = R"({"case":"one"})") {
  return message_record{
      id, sender, "victim.identification", "2026-11-22T04:38:47Z", fingerprint(body), body};
}

TEST_P(StoreContract, StoredThenFindShowsIt) {
  const message_record record = plain_record(make_id(1));
  const accept_result result = accept(record);
  EXPECT_EQ(result.outcome, accept_outcome::stored);
  EXPECT_EQ(result.accepted_at.size(), 24U) << result.accepted_at;  // 2026-11-22T04:38:47.123Z
  EXPECT_TRUE(result.reason.empty());

  const auto [status, ok] = find(record.id);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->id, record.id);
  EXPECT_EQ(status->sender, record.sender);
  EXPECT_EQ(status->type, record.type);
  EXPECT_EQ(status->created, record.created);
  EXPECT_EQ(status->accepted_at, result.accepted_at);
  EXPECT_EQ(status->state, "undeliverable");  // kept, but routing gave it no recipient
  EXPECT_TRUE(status->recipients.empty());
  EXPECT_TRUE(store_->healthy());
}

TEST_P(StoreContract, ReadBodyGivesTheSenderAndTheBodyAsStored) {
  const message_record record = plain_record(make_id(7), "kh-ratanakiri", R"({"ref":"KH-16-42"})");
  ASSERT_EQ(accept(record).outcome, accept_outcome::stored);
  const auto read = [this](const std::string& id) {
    std::promise<std::pair<std::optional<stored_body>, bool>> p;
    store_->read_body(id, [&p](std::optional<stored_body> body, bool ok) {
      p.set_value({std::move(body), ok});
    });
    return p.get_future().get();
  };
  auto [body, ok] = read(record.id);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->sender, "kh-ratanakiri");
  EXPECT_EQ(body->body, R"({"ref":"KH-16-42"})");
  std::tie(body, ok) = read(make_id(404));
  EXPECT_TRUE(ok);
  EXPECT_FALSE(body.has_value());
  store_->stop();
  std::tie(body, ok) = read(record.id);
  EXPECT_FALSE(ok);
  EXPECT_FALSE(body.has_value());
}

TEST_P(StoreContract, FindUnknownIsNotAnError) {
  const auto [status, ok] = find(make_id(404));
  EXPECT_TRUE(ok);
  EXPECT_FALSE(status.has_value());
}

TEST_P(StoreContract, DuplicateKeepsTheFirstAcceptedAt) {
  const message_record record = plain_record(make_id(1));
  const accept_result first = accept(record);
  ASSERT_EQ(first.outcome, accept_outcome::stored);
  const accept_result again = accept(record);
  EXPECT_EQ(again.outcome, accept_outcome::duplicate);
  EXPECT_EQ(again.accepted_at, first.accepted_at);
}

TEST_P(StoreContract, SameIdOtherBodyOrSenderIsConflictAndTheRowStays) {
  const message_record original = plain_record(make_id(1), "kh-cnp", R"({"case":"one"})");
  ASSERT_EQ(accept(original).outcome, accept_outcome::stored);
  const accept_result other_body = accept(plain_record(make_id(1), "kh-cnp", R"({"case":"two"})"));
  EXPECT_EQ(other_body.outcome, accept_outcome::conflict);
  EXPECT_TRUE(other_body.accepted_at.empty());
  EXPECT_EQ(accept(plain_record(make_id(1), "th-dsi")).outcome, accept_outcome::conflict);
  const auto [status, ok] = find(original.id);
  ASSERT_TRUE(ok && status.has_value());
  EXPECT_EQ(status->sender, "kh-cnp");
  // The original is still judged the same: its exact copy is a duplicate.
  EXPECT_EQ(accept(original).outcome, accept_outcome::duplicate);
}

TEST_P(StoreContract, SameIdTwiceQueuedTogetherIsJudgedAgainstTheFirst) {
  const message_record record = plain_record(make_id(1), "kh-cnp", R"({"case":"one"})");
  const message_record changed = plain_record(make_id(1), "kh-cnp", R"({"case":"two"})");
  std::promise<accept_result> a, b, c;
  // Queued back to back: whether they share a batch or not, the answers are the same.
  store_->accept(record, [&a](accept_result r) { a.set_value(std::move(r)); });
  store_->accept(record, [&b](accept_result r) { b.set_value(std::move(r)); });
  store_->accept(changed, [&c](accept_result r) { c.set_value(std::move(r)); });
  auto fa = a.get_future(), fb = b.get_future(), fc = c.get_future();
  const accept_result first = wait_for(fa, "accept");
  const accept_result copy = wait_for(fb, "accept");
  EXPECT_EQ(first.outcome, accept_outcome::stored);
  EXPECT_EQ(copy.outcome, accept_outcome::duplicate);
  EXPECT_EQ(copy.accepted_at, first.accepted_at);
  EXPECT_EQ(wait_for(fc, "accept").outcome, accept_outcome::conflict);
}

TEST_P(StoreContract, AThrowingHandlerDoesNotStopTheWriter) {
  std::promise<void> called;
  store_->accept(plain_record(make_id(1)), [&called](accept_result) {
    called.set_value();
    throw std::runtime_error("handler failure");
  });
  ASSERT_EQ(called.get_future().wait_for(wait_limit), std::future_status::ready);
  EXPECT_EQ(accept(plain_record(make_id(2))).outcome, accept_outcome::stored);
}

TEST_P(StoreContract, ConcurrentAcceptsAreEachStoredOnce) {
  constexpr int count = 200;
  std::mutex mutex;
  std::map<std::string, int> stored;
  std::promise<void> done;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  std::atomic<int> next{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int n = next++; n < count; n = next++) {
        store_->accept(plain_record(make_id(n)), [&, n](accept_result r) {
          {
            const std::lock_guard lock(mutex);
            stored[make_id(n)] += r.outcome == accept_outcome::stored ? 1 : 0;
          }
          if (++answered == count) {
            done.set_value();
          }
        });
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  ASSERT_EQ(done.get_future().wait_for(wait_limit), std::future_status::ready);
  ASSERT_EQ(stored.size(), static_cast<std::size_t>(count));
  for (const auto& [id, n] : stored) {
    EXPECT_EQ(n, 1) << id;
  }
  EXPECT_EQ(accept(plain_record(make_id(7))).outcome, accept_outcome::duplicate);
}

TEST_P(StoreContract, StopCommitsWhatIsQueued) {
  std::atomic<int> stored{0};
  for (int n = 0; n < 50; ++n) {
    store_->accept(plain_record(make_id(n)), [&stored](accept_result result) {
      if (result.outcome == accept_outcome::stored) {
        ++stored;
      }
    });
  }
  store_->stop();
  EXPECT_EQ(stored.load(), 50);  // every handler ran before stop() returned
  reopen();
  for (int n = 0; n < 50; n += 7) {
    const auto [status, ok] = find(make_id(n));
    EXPECT_TRUE(ok && status.has_value()) << n;
  }
}

TEST_P(StoreContract, AfterStopEverythingIsUnavailable) {
  store_->stop();
  store_->stop();  // idempotent
  std::optional<accept_result> accepted;
  store_->accept(plain_record(make_id(1)), [&](accept_result r) { accepted = std::move(r); });
  ASSERT_TRUE(accepted.has_value());  // answered at once, on this thread
  EXPECT_EQ(accepted->outcome, accept_outcome::unavailable);
  EXPECT_EQ(accepted->reason, "stopped");
  std::optional<bool> found_ok;
  store_->find(make_id(1), [&](std::optional<message_status> status, bool ok) {
    EXPECT_FALSE(status.has_value());
    found_ok = ok;
  });
  ASSERT_TRUE(found_ok.has_value());
  EXPECT_FALSE(*found_ok);
}

TEST_P(StoreContract, ReopenKeepsEverything) {
  std::vector<std::string> accepted_at;
  for (int n = 0; n < 3; ++n) {
    const accept_result result = accept(plain_record(make_id(n)));
    ASSERT_EQ(result.outcome, accept_outcome::stored);
    accepted_at.push_back(result.accepted_at);
  }
  reopen();
  for (int n = 0; n < 3; ++n) {
    const auto [status, ok] = find(make_id(n));
    ASSERT_TRUE(ok && status.has_value());
    EXPECT_EQ(status->accepted_at, accepted_at[static_cast<std::size_t>(n)]);
  }
  const accept_result again = accept(plain_record(make_id(0)));
  EXPECT_EQ(again.outcome, accept_outcome::duplicate);
  EXPECT_EQ(again.accepted_at, accepted_at[0]);
}

TEST_P(StoreContract, ReceiptsAndErrorsKeepTheirBytes) {
  // A partner's receipt is untrusted bytes: invalid UTF-8 and NUL must be kept, not fail a batch.
  const std::string id = make_id(30);
  ASSERT_EQ(accept(record_with_audit(id, "{}")).outcome, accept_outcome::stored);
  std::promise<std::vector<delivery_job>> claimed;
  auto cf = claimed.get_future();
  store_->claim_due("w", 10, std::chrono::minutes(1), {},
                    [&claimed](std::vector<delivery_job> jobs, bool) {
                      claimed.set_value(std::move(jobs));
                    });
  ASSERT_EQ(wait_for(cf, "claim").size(), 1U);
  const std::string receipt("ok\xff\xfe\0end", 9);
  attempt_report r{id, "vn-thanhhoa", "w", attempt_result::delivered};
  r.attempt = 1;
  r.receipt = receipt;
  std::promise<bool> p;
  auto f = p.get_future();
  store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
  ASSERT_TRUE(wait_for(f, "report"));
  EXPECT_EQ(accept(plain_record(make_id(31))).outcome, accept_outcome::stored);
  const auto [status, ok] = find(id);
  ASSERT_TRUE(ok && status.has_value());
  ASSERT_EQ(status->recipients.size(), 1U);
  EXPECT_EQ(status->recipients[0].state, "delivered");
  EXPECT_EQ(status->recipients[0].receipt, receipt);
}

TEST_P(StoreContract, RetentionPurgesWhatIsPastItsTimeAndKeepsTheRest) {
  const auto now = std::chrono::system_clock::now();
  const auto day = std::chrono::hours(24);
  // A: two recipients (one delivered, one dead); B: one recipient still retrying; C: no recipient.
  message_record a = record_with_audit(make_id(20), "{\"a\":1}");
  a.deliveries.push_back({"kh-stungtreng", "rule-1", "{\"to\":\"st\"}", "[]"});
  ASSERT_EQ(accept(std::move(a)).outcome, accept_outcome::stored);
  ASSERT_EQ(accept(record_with_audit(make_id(21), "{\"b\":1}")).outcome, accept_outcome::stored);
  message_record c = record_with_audit(make_id(22), "{\"c\":1}");
  c.deliveries.clear();
  ASSERT_EQ(accept(std::move(c)).outcome, accept_outcome::stored);

  std::promise<std::vector<delivery_job>> claimed;
  auto cf = claimed.get_future();
  store_->claim_due("w", 10, std::chrono::minutes(1), {},
                    [&claimed](std::vector<delivery_job> jobs, bool) {
                      claimed.set_value(std::move(jobs));
                    });
  ASSERT_EQ(wait_for(cf, "claim").size(), 3U);
  const auto report = [&](const std::string& id, const std::string& recipient,
                          attempt_result result) {
    attempt_report r;
    r.message_id = id;
    r.recipient = recipient;
    r.owner = "w";
    r.attempt = 1;
    r.result = result;
    r.next_attempt_at = now + day;
    r.error = "x";
    r.receipt = "receipt-x";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(wait_for(f, "report"));
  };
  report(make_id(20), "vn-thanhhoa", attempt_result::delivered);
  report(make_id(20), "kh-stungtreng", attempt_result::dead);
  report(make_id(21), "vn-thanhhoa", attempt_result::retry);

  const auto purge = [&](retention_cut cut) {
    std::promise<std::pair<purge_result, bool>> p;
    auto f = p.get_future();
    store_->purge(std::move(cut), [&p](purge_result r, bool ok) { p.set_value({r, ok}); });
    auto [result, ok] = wait_for(f, "purge");
    EXPECT_TRUE(ok);
    return result;
  };
  // Delivered copies are past their time, dead ones not yet: A's delivered payload and C's body go;
  // A's body stays (its dead copy may still be replayed), B is untouched.
  auto first = purge({now + day, now - day, 1000, "gateway:test"});
  EXPECT_EQ(first.payloads, 1U);
  EXPECT_EQ(first.bodies, 1U);
  // Nothing more to do at the same cut: no second audit entry.
  auto again = purge({now + day, now - day, 1000, "gateway:test"});
  EXPECT_EQ(again.payloads, 0U);
  EXPECT_EQ(again.bodies, 0U);
  // Later the dead copy is past its time too: it expires, and A's body goes with it.
  auto second = purge({now + day, now + day, 1000, "gateway:test"});
  EXPECT_EQ(second.payloads, 1U);
  EXPECT_EQ(second.bodies, 1U);

  std::promise<std::pair<bool, bool>> replayed;
  auto rf = replayed.get_future();
  store_->replay(make_id(20), "kh-stungtreng", {},
                 [&replayed](bool found, bool ok) { replayed.set_value({found, ok}); });
  EXPECT_EQ(wait_for(rf, "replay"), std::make_pair(false, true));  // expired: nothing to replay

  std::promise<std::optional<message_status>> found;
  auto ff = found.get_future();
  store_->find(make_id(20), [&found](std::optional<message_status> s, bool) {
    found.set_value(std::move(s));
  });
  const auto status = wait_for(ff, "find");
  ASSERT_TRUE(status.has_value());  // the metadata stays
  std::map<std::string, std::string> states;
  for (const auto& r : status->recipients) {
    states[r.recipient] = r.state;
  }
  EXPECT_EQ(states["vn-thanhhoa"], "delivered");
  EXPECT_EQ(states["kh-stungtreng"], "expired");
  // The partners' words go with the payload: the receipt and the refusal's text.
  for (const auto& r : status->recipients) {
    EXPECT_EQ(r.receipt, "") << r.recipient;
    EXPECT_EQ(r.last_error, "") << r.recipient;
  }
  std::promise<std::optional<message_status>> untouched;
  auto uf = untouched.get_future();
  store_->find(make_id(21), [&untouched](std::optional<message_status> s, bool) {
    untouched.set_value(std::move(s));
  });
  const auto b = wait_for(uf, "find");
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->recipients.size(), 1U);
  EXPECT_EQ(b->recipients[0].last_error, "x");  // retrying: nothing of it is purged

  std::vector<audit::audit_row> purges;
  for (auto& row : read()) {
    if (row.event == "retention.purged") {
      purges.push_back(row);
    }
  }
  ASSERT_EQ(purges.size(), 2U);
  EXPECT_NE(purges[0].entry.find("\"payloads\":\"1\""), std::string::npos) << purges[0].entry;
  EXPECT_EQ(purges[0].actor, "gateway:test");
}

TEST_P(StoreContract, TransferRegisterCountsByPartnerMonthAndType) {
  ASSERT_EQ(accept(record_with_audit(make_id(30), "{}")).outcome, accept_outcome::stored);
  ASSERT_EQ(accept(record_with_audit(make_id(31), "{\"x\":1}")).outcome, accept_outcome::stored);
  std::promise<std::vector<delivery_job>> claimed;
  auto cf = claimed.get_future();
  store_->claim_due("w", 1, std::chrono::minutes(1), {},
                    [&claimed](std::vector<delivery_job> jobs, bool) {
                      claimed.set_value(std::move(jobs));
                    });
  const auto jobs = wait_for(cf, "claim");
  ASSERT_EQ(jobs.size(), 1U);
  attempt_report r;
  r.message_id = jobs[0].message_id;
  r.recipient = jobs[0].recipient;
  r.owner = "w";
  r.attempt = jobs[0].attempt;
  r.result = attempt_result::delivered;
  std::promise<bool> p;
  auto f = p.get_future();
  store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
  ASSERT_TRUE(wait_for(f, "report"));

  const auto month_now = [] {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[8];
    std::strftime(text, sizeof text, "%Y-%m", &tm);
    return std::string(text);
  }();
  std::promise<std::vector<transfer_count>> reg;
  auto regf = reg.get_future();
  store_->transfer_register("2000-01", "2999-12", [&reg](std::vector<transfer_count> rows, bool ok) {
    EXPECT_TRUE(ok);
    reg.set_value(std::move(rows));
  });
  const auto rows = wait_for(regf, "transfer_register");
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].partner, "kh-ratanakiri");
  EXPECT_EQ(rows[0].direction, "received-from");
  EXPECT_EQ(rows[0].month, month_now);
  EXPECT_EQ(rows[0].type, "victim.identification");
  EXPECT_EQ(rows[0].count, 2U);
  EXPECT_EQ(rows[1].partner, "vn-thanhhoa");
  EXPECT_EQ(rows[1].direction, "sent-to");
  EXPECT_EQ(rows[1].count, 1U);

  std::promise<std::vector<transfer_count>> none;
  auto nonef = none.get_future();
  store_->transfer_register("2000-01", "2000-12",
                            [&none](std::vector<transfer_count> old, bool) {
                              none.set_value(std::move(old));
                            });
  EXPECT_TRUE(wait_for(nonef, "transfer_register").empty());
}

// The statistics' facts: stored with the message, read back page by page in the order of
// acceptance from a given time on, and kept when retention purges the body.
TEST_P(StoreContract, FactsAreReadInOrderPageByPageAndOutliveTheBody) {
  const auto facts_of = [](int n) { return "{\"sex\":\"F\",\"n\":" + std::to_string(n) + "}"; };
  for (int n = 0; n < 5; ++n) {
    message_record r = record_with_audit(make_id(40 + n), "{\"m\":" + std::to_string(n) + "}");
    r.facts = facts_of(n);
    if (n == 0) {
      r.deliveries.clear();  // no recipient: retention may take its body at once
    }
    if (n == 4) {
      r.facts.clear();  // as a message stored before facts were kept
    }
    ASSERT_EQ(accept(std::move(r)).outcome, accept_outcome::stored);
  }
  const auto page = [&](const std::string& since, const std::string& after, std::size_t limit) {
    std::promise<std::pair<facts_page, bool>> p;
    auto f = p.get_future();
    store_->read_facts(since, after, limit, [&p](facts_page got, bool ok) {
      p.set_value({std::move(got), ok});
    });
    return wait_for(f, "read_facts");
  };
  std::vector<message_facts> all;
  std::string cursor;
  int pages = 0;
  do {
    auto [got, ok] = page("2000-01-01", cursor, 2);
    ASSERT_TRUE(ok);
    ASSERT_LE(got.rows.size(), 2U);
    all.insert(all.end(), got.rows.begin(), got.rows.end());
    cursor = got.next;
    ASSERT_LT(++pages, 10) << "the cursor does not advance";
  } while (!cursor.empty());
  ASSERT_EQ(all.size(), 5U);
  for (int n = 0; n < 5; ++n) {
    EXPECT_EQ(all[n].id, make_id(40 + n));
    EXPECT_EQ(all[n].sender, "kh-ratanakiri");
    EXPECT_EQ(all[n].type, "victim.identification");
    EXPECT_EQ(all[n].facts, n == 4 ? std::string() : facts_of(n));
    EXPECT_EQ(all[n].accepted_at.size(), 24U) << all[n].accepted_at;  // RFC 3339 with ms
  }
  // Nothing accepted in the future; a cursor that is not one is refused.
  auto [later, later_ok] = page("2999-01-01", "", 10);
  EXPECT_TRUE(later_ok);
  EXPECT_TRUE(later.rows.empty());
  EXPECT_TRUE(later.next.empty());
  EXPECT_FALSE(page("2000-01-01", "not-a-cursor", 10).second);

  // Retention takes the bodies; the facts stay.
  std::promise<std::pair<purge_result, bool>> purged;
  auto pf = purged.get_future();
  const auto future = std::chrono::system_clock::now() + std::chrono::hours(24);
  store_->purge({future, future, 1000, "gateway:test"}, [&purged](purge_result r, bool ok) {
    purged.set_value({r, ok});
  });
  const auto [purge_counts, purge_ok] = wait_for(pf, "purge");
  ASSERT_TRUE(purge_ok);
  ASSERT_EQ(purge_counts.bodies, 1U);  // the first message's
  auto [after_purge, ok] = page("2000-01-01", "", 10);
  ASSERT_TRUE(ok);
  ASSERT_EQ(after_purge.rows.size(), 5U);
  EXPECT_EQ(after_purge.rows[0].facts, facts_of(0));

  // Re-encryption is shown the facts as the message's own value, and what it writes is kept.
  std::vector<stored_value> seen;
  std::promise<bool> rewritten;
  auto rf = rewritten.get_future();
  store_->rewrite_values(
      "", 100,
      [&seen](const stored_value& v) -> std::optional<std::string> {
        seen.push_back(v);
        if (v.field == value_field::facts) {
          return "{\"rewritten\":true}";
        }
        return std::nullopt;
      },
      [&rewritten](rewrite_result, bool done) { rewritten.set_value(done); });
  ASSERT_TRUE(wait_for(rf, "rewrite_values"));
  std::size_t facts_seen = 0;
  for (const auto& v : seen) {
    if (v.field == value_field::facts) {
      ++facts_seen;
      EXPECT_TRUE(v.recipient.empty());
    }
  }
  EXPECT_EQ(facts_seen, 4U);  // the empty one is not shown
  auto [rewritten_page, rewritten_ok] = page("2000-01-01", "", 10);
  ASSERT_TRUE(rewritten_ok);
  ASSERT_EQ(rewritten_page.rows.size(), 5U);
  EXPECT_EQ(rewritten_page.rows[2].facts, "{\"rewritten\":true}");
  EXPECT_EQ(rewritten_page.rows[4].facts, "");
}

// A withdrawal routed before its original committed (the look-up found nothing) must not be
// stored once the original is there: some of the original's copies may be out, and routing has
// to see the original to reach their recipients. Nothing of it is written; routed again (the
// original seen), it is stored and takes the queued copies back.
TEST_P(StoreContract, AWithdrawalRoutedWithoutItsStoredOriginalIsToldToRouteAgain) {
  ASSERT_EQ(accept(record_with_audit(make_id(50), "{\"x\":1}")).outcome, accept_outcome::stored);
  message_record w = record_with_audit(make_id(51), "{\"w\":1}");
  w.type = "case.status";
  w.withdraws = make_id(50);
  EXPECT_EQ(accept(w).outcome, accept_outcome::reroute);
  auto [unknown, unknown_ok] = find(make_id(51));
  EXPECT_TRUE(unknown_ok);
  EXPECT_FALSE(unknown.has_value());
  for (const auto& row : read()) {
    EXPECT_NE(row.message_id, make_id(51)) << row.event;  // its audit entry did not go in either
  }
  auto [original, original_ok] = find(make_id(50));
  ASSERT_TRUE(original.has_value());
  EXPECT_EQ(original->recipients.at(0).state, "pending");

  w.original_seen = true;
  EXPECT_EQ(accept(w).outcome, accept_outcome::stored);
  auto [after, after_ok] = find(make_id(50));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->recipients.at(0).state, "withdrawn");

  // Another sender's message of that id, or none at all: nothing to see again, stored at once.
  message_record other = record_with_audit(make_id(52), "{\"o\":1}");
  other.sender = "kh-stungtreng";
  other.withdraws = make_id(50);
  EXPECT_EQ(accept(other).outcome, accept_outcome::stored);
  message_record none = record_with_audit(make_id(53), "{\"n\":1}");
  none.withdraws = make_id(99);
  EXPECT_EQ(accept(none).outcome, accept_outcome::stored);
  // A resend of the stored withdrawal is its duplicate, as for any message.
  w.original_seen = false;
  EXPECT_EQ(accept(w).outcome, accept_outcome::duplicate);
}

TEST_P(StoreContract, AWithdrawalTakesBackTheQueuedCopiesOfTheSendersOwnMessage) {
  message_record original = record_with_audit(make_id(40), "{\"o\":1}");
  original.deliveries.push_back({"kh-stungtreng", "rule-1", "{\"to\":\"st\"}", "[]"});
  ASSERT_EQ(accept(std::move(original)).outcome, accept_outcome::stored);
  // One copy is in flight (claimed), the other still queued.
  std::promise<std::vector<delivery_job>> claimed;
  auto cf = claimed.get_future();
  store_->claim_due("w", 1, std::chrono::minutes(1), {{"kh-stungtreng", 0}},
                    [&claimed](std::vector<delivery_job> jobs, bool) {
                      claimed.set_value(std::move(jobs));
                    });
  ASSERT_EQ(wait_for(cf, "claim").size(), 1U);

  // Another partner cannot take the message back.
  message_record foreign = record_with_audit(make_id(41), "{\"w\":0}");
  foreign.sender = "vn-gialai";
  foreign.withdraws = make_id(40);
  ASSERT_EQ(accept(std::move(foreign)).outcome, accept_outcome::stored);
  const auto states = [&] {
    std::map<std::string, std::string> out;
    const auto [status, ok] = find(make_id(40));
    EXPECT_TRUE(ok && status.has_value());
    if (status) {
      for (const auto& r : status->recipients) {
        out[r.recipient] = r.state;
      }
    }
    return out;
  };
  EXPECT_EQ(states()["kh-stungtreng"], "pending");

  message_record withdrawal = record_with_audit(make_id(42), "{\"w\":1}");
  withdrawal.type = "case.status";
  withdrawal.withdraws = make_id(40);
  withdrawal.original_seen = true;  // as routing found it
  ASSERT_EQ(accept(std::move(withdrawal)).outcome, accept_outcome::stored);
  auto after = states();
  EXPECT_EQ(after["kh-stungtreng"], "withdrawn");  // the queued copy will not go out
  EXPECT_EQ(after["vn-thanhhoa"], "delivering");   // the one in flight finishes as it may

  // Nothing withdrawn is ever claimed again.
  std::promise<std::vector<delivery_job>> again;
  auto af = again.get_future();
  store_->claim_due("w2", 10, std::chrono::minutes(1), {},
                    [&again](std::vector<delivery_job> jobs, bool) {
                      again.set_value(std::move(jobs));
                    });
  for (const auto& job : wait_for(af, "claim")) {
    EXPECT_FALSE(job.message_id == make_id(40) && job.recipient == "kh-stungtreng");
  }
}

// A withdrawal that comes while copies are in flight or dead: none of them is ever sent again. A
// dead letter is taken back with the queued copies; a copy in flight is taken back by its failed
// attempt (retry or dead) or, when its worker never reports (a crash), by the claim after its
// lease ran out; a dead letter cannot be replayed.
TEST_P(StoreContract, AWithdrawnMessagesCopiesInFlightOrDeadAreNeverSentAgain) {
  message_record original = record_with_audit(make_id(50), "{\"o\":1}");
  for (const char* to : {"kh-stungtreng", "la-mps", "th-dsi"}) {
    original.deliveries.push_back({to, "rule-1", "{\"to\":1}", "[]"});
  }
  ASSERT_EQ(accept(std::move(original)).outcome, accept_outcome::stored);
  const auto claim = [&](const std::string& owner, std::chrono::milliseconds lease) {
    std::promise<std::vector<delivery_job>> p;
    auto f = p.get_future();
    store_->claim_due(owner, 10, lease, {},
                      [&p](std::vector<delivery_job> jobs, bool) { p.set_value(std::move(jobs)); });
    return wait_for(f, "claim");
  };
  const auto report = [&](const std::string& to, const std::string& owner, attempt_result result) {
    attempt_report r{.message_id = make_id(50),
                     .recipient = to,
                     .owner = owner,
                     .result = result,
                     .next_attempt_at = std::chrono::system_clock::now(),
                     .error = "http-503",
                     .attempt = 1};
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(wait_for(f, "report"));
  };
  const auto states = [&] {
    std::map<std::string, std::string> out;
    const auto [status, ok] = find(make_id(50));
    EXPECT_TRUE(ok && status.has_value());
    if (status) {
      for (const auto& r : status->recipients) {
        out[r.recipient] = r.state;
      }
    }
    return out;
  };
  // All four in flight; la-mps refused it for good before the withdrawal came.
  ASSERT_EQ(claim("w", std::chrono::milliseconds(1)).size(), 4U);
  report("la-mps", "w", attempt_result::dead);

  message_record withdrawal = record_with_audit(make_id(51), "{\"w\":1}");
  withdrawal.type = "case.status";
  withdrawal.withdraws = make_id(50);
  withdrawal.original_seen = true;
  withdrawal.deliveries.clear();
  ASSERT_EQ(accept(std::move(withdrawal)).outcome, accept_outcome::stored);
  EXPECT_EQ(states()["la-mps"], "withdrawn");  // the dead letter, taken back

  report("kh-stungtreng", "w", attempt_result::retry);  // its attempt failed: not queued again
  report("vn-thanhhoa", "w", attempt_result::dead);     // refused: no dead letter either
  // th-dsi's worker never reports; its lease has run out, and the next claim takes it back.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(claim("w2", std::chrono::minutes(1)).empty());
  const auto after = states();
  for (const char* to : {"kh-stungtreng", "la-mps", "th-dsi", "vn-thanhhoa"}) {
    EXPECT_EQ(after.at(to), "withdrawn") << to;
  }
  std::promise<std::pair<bool, bool>> replayed;
  auto rf = replayed.get_future();
  store_->replay(make_id(50), "la-mps", {}, [&replayed](bool found, bool ok) {
    replayed.set_value({found, ok});
  });
  EXPECT_EQ(wait_for(rf, "replay"), std::make_pair(false, true));
  EXPECT_TRUE(claim("w3", std::chrono::minutes(1)).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::ValuesIn(contract_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace mxgw::store
