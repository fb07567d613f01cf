// Tests of what is PostgreSQL's own: several store objects ("instances") on one database claiming,
// accepting and auditing concurrently, schema versions, passwords kept out of errors and logs, and
// surviving the loss of the connection. Run when MXGW_TEST_PG_DSN is set (scripts/test.sh).
#include "gateway/store/pg_store.hpp"

#include "gateway/common/digest.hpp"
#include "gateway/common/log.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

template <typename T>
T wait_for(std::future<T>& future, const char* what) {
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << what << ": handler not called";
    return T{};
  }
  return future.get();
}

accept_result accept_now(message_store& store, message_record record) {
  std::promise<accept_result> p;
  auto f = p.get_future();
  store.accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
  return wait_for(f, "accept");
}

std::vector<delivery_job> claim_now(message_store& store, const std::string& owner,
                                    std::size_t max_jobs) {
  std::promise<std::pair<std::vector<delivery_job>, bool>> p;
  auto f = p.get_future();
  store.claim_due(owner, max_jobs, 5min, {}, [&p](std::vector<delivery_job> jobs, bool ok) {
    p.set_value({std::move(jobs), ok});
  });
  auto [jobs, ok] = wait_for(f, "claim");
  EXPECT_TRUE(ok);
  return jobs;
}

/// A claim as the delivery service makes it: each partner's remaining allowance in `caps` (its
/// concurrency less what this owner has in flight).
std::vector<delivery_job> claim_capped(message_store& store, const std::string& owner,
                                       std::vector<recipient_cap> caps,
                                       std::chrono::milliseconds lease = 30s) {
  std::promise<std::pair<std::vector<delivery_job>, bool>> p;
  auto f = p.get_future();
  store.claim_due(owner, 16, lease, std::move(caps), [&p](std::vector<delivery_job> jobs, bool ok) {
    p.set_value({std::move(jobs), ok});
  });
  auto [jobs, ok] = wait_for(f, "claim");
  EXPECT_TRUE(ok);
  return jobs;
}

std::size_t count_for(const std::vector<delivery_job>& jobs, const std::string& recipient) {
  return static_cast<std::size_t>(std::count_if(
      jobs.begin(), jobs.end(), [&](const delivery_job& j) { return j.recipient == recipient; }));
}

void report_delivered(message_store& store, const delivery_job& job, const std::string& owner) {
  attempt_report report{job.message_id, job.recipient, owner, attempt_result::delivered};
  report.attempt = job.attempt;
  report.receipt = R"({"receipt":"ok"})";
  std::promise<bool> p;
  auto f = p.get_future();
  store.report(std::move(report), [&p](bool ok) { p.set_value(ok); });
  EXPECT_TRUE(wait_for(f, "report"));
}

std::vector<audit::audit_row> read_all_audit(message_store& store) {
  std::promise<std::vector<audit::audit_row>> p;
  auto f = p.get_future();
  store.read_audit(0, 100000, [&p](std::vector<audit::audit_row> rows, bool ok) {
    EXPECT_TRUE(ok);
    p.set_value(std::move(rows));
  });
  return wait_for(f, "read_audit");
}

message_record record_for(int n, const std::vector<std::string>& recipients,
                          const std::string& body_suffix = "") {
  const std::string body = R"({"case":)" + std::to_string(n) + body_suffix + "}";
  message_record r{make_id(n),        "kh-cnp", "victim.identification", "2026-11-22T04:38:47Z",
                   fingerprint(body), body};
  for (const auto& recipient : recipients) {
    r.deliveries.push_back({recipient, "explicit", "payload", "[]"});
  }
  r.audit.push_back({"message.accepted", "partner:kh-cnp", "kh-cnp", r.id, {}});
  return r;
}

class PgStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (pg_test_dsn().empty()) {
      GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
    }
  }
  void TearDown() override {
    if (!pg_test_dsn().empty()) {
      pg_exec("DROP SCHEMA IF EXISTS " + pg_schema_for(dir_.path()) + " CASCADE");
    }
  }
  /// One more "instance" on the test's schema.
  std::unique_ptr<message_store> instance(const std::string& application_name = "mxgw-test",
                                          clock_function clock = {}) {
    postgres_options options = pg_options_for(dir_.path(), std::move(clock));
    options.dsn += " application_name=" + application_name;
    options.reconnect_min = 10ms;
    options.reconnect_max = 50ms;
    return open_postgres_store(options);
  }
  std::string query(const std::string& sql) {
    return pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) + "; " + sql);
  }

  test::temp_dir dir_;
};

TEST_F(PgStore, TwoInstancesClaimingConcurrentlyNeverGetTheSameRow) {
  auto a = instance();
  auto b = instance();
  const std::vector<std::string> recipients{"la-mps", "interpol", "vn-thanhhoa"};
  constexpr int messages = 120;
  for (int n = 0; n < messages; ++n) {
    ASSERT_EQ(accept_now(n % 2 == 0 ? *a : *b, record_for(n, recipients)).outcome,
              accept_outcome::stored);
  }
  std::mutex mutex;
  std::map<std::pair<std::string, std::string>, std::string> owner_of;
  std::atomic<int> duplicates{0};
  // All six workers start together, so the two instances' claims overlap.
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  const auto worker = [&, start](message_store& store, const std::string& owner) {
    start.wait();
    for (int empty_rounds = 0; empty_rounds < 3;) {
      const auto jobs = claim_now(store, owner, 7);
      empty_rounds = jobs.empty() ? empty_rounds + 1 : 0;
      const std::lock_guard lock(mutex);
      for (const auto& job : jobs) {
        if (!owner_of.emplace(std::make_pair(job.message_id, job.recipient), owner).second) {
          ++duplicates;
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back(worker, std::ref(*a), "a" + std::to_string(t));
    threads.emplace_back(worker, std::ref(*b), "b" + std::to_string(t));
  }
  go.set_value();
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(owner_of.size(), static_cast<std::size_t>(messages) * recipients.size());
  EXPECT_EQ(query("SELECT count(*) FROM deliveries WHERE state = 'delivering' AND attempts = 1"),
            std::to_string(messages * 3));
}

TEST_F(PgStore, TheSameIdAcceptedByTwoInstancesAtOnceIsStoredOnce) {
  auto a = instance();
  auto b = instance();
  constexpr int ids = 60;
  std::mutex mutex;
  std::map<int, std::vector<accept_outcome>> outcomes;
  std::promise<void> done;
  std::atomic<int> answered{0};
  const auto handler = [&](int n) {
    return [&, n](accept_result r) {
      {
        const std::lock_guard lock(mutex);
        outcomes[n].push_back(r.outcome);
      }
      if (++answered == 2 * ids) {
        done.set_value();
      }
    };
  };
  std::thread ta([&] {
    for (int n = 0; n < ids; ++n) {
      a->accept(record_for(n, {"la-mps"}), handler(n));
    }
  });
  std::thread tb([&] {
    for (int n = 0; n < ids; ++n) {
      // Odd ids: the second instance gets other bytes under the same id (a conflict).
      b->accept(record_for(n, {"la-mps"}, n % 2 == 1 ? ",\"x\":1" : ""), handler(n));
    }
  });
  ta.join();
  tb.join();
  ASSERT_EQ(done.get_future().wait_for(wait_limit), std::future_status::ready);
  for (const auto& [n, got] : outcomes) {
    ASSERT_EQ(got.size(), 2U);
    const int stored = static_cast<int>(std::count(got.begin(), got.end(), accept_outcome::stored));
    const accept_outcome other = got[0] == accept_outcome::stored ? got[1] : got[0];
    EXPECT_EQ(stored, 1) << n;
    EXPECT_EQ(other, n % 2 == 1 ? accept_outcome::conflict : accept_outcome::duplicate) << n;
  }
  EXPECT_EQ(query("SELECT count(*) FROM messages"), std::to_string(ids));
  EXPECT_EQ(query("SELECT count(*) FROM deliveries"), std::to_string(ids));
  EXPECT_EQ(query("SELECT count(*) FROM audit"), std::to_string(ids));  // stored ones only
}

TEST_F(PgStore, AuditAppendedFromTwoInstancesIsOneLinkedChain) {
  auto a = instance();
  auto b = instance();
  constexpr int per_thread = 40;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    message_store& store = t % 2 == 0 ? *a : *b;
    threads.emplace_back([&store, &ok, t] {
      for (int i = 0; i < per_thread; ++i) {
        std::promise<bool> p;
        auto f = p.get_future();
        store.append_audit({{"admin.read", "admin:t" + std::to_string(t), "", "", {}}},
                           [&p](bool done) { p.set_value(done); });
        ok += wait_for(f, "append_audit") ? 1 : 0;
      }
    });
  }
  // State puts from both instances in between: versions increase in commit order.
  std::vector<std::int64_t> versions;
  for (int i = 0; i < 20; ++i) {
    std::promise<std::int64_t> p;
    auto f = p.get_future();
    (i % 2 == 0 ? *a : *b)
        .put_state({"partner", "p" + std::to_string(i), "{}", 0, "", "admin:x"}, std::nullopt,
                   {{"partner.updated", "admin:x", "", "", {}}},
                   [&p](put_outcome o, std::int64_t v) {
                     EXPECT_EQ(o, put_outcome::applied);
                     p.set_value(v);
                   });
    versions.push_back(wait_for(f, "put_state"));
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(ok.load(), 4 * per_thread);
  for (std::size_t i = 1; i < versions.size(); ++i) {
    EXPECT_LT(versions[i - 1], versions[i]);
  }
  const auto rows = read_all_audit(*b);
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(4 * per_thread + 20));
  std::string prev(audit::genesis_hash());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(rows[i].hash, sha256_hex(rows[i].entry));
    EXPECT_NE(rows[i].entry.find("\"prev\":\"" + prev + "\""), std::string::npos) << i;
    prev = rows[i].hash;
  }
}

/// A connection of the test's own on the test's schema, holding a transaction open: another
/// instance in the middle of its batch.
class pg_open_transaction {
 public:
  explicit pg_open_transaction(const std::string& schema)
      : conn_(PQconnectdb(pg_test_dsn().c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK);
    exec("SET search_path TO " + schema);
    exec("BEGIN");
  }
  ~pg_open_transaction() { PQfinish(conn_); }
  pg_open_transaction(const pg_open_transaction&) = delete;
  pg_open_transaction& operator=(const pg_open_transaction&) = delete;

  void exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const auto status = PQresultStatus(r);
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        << sql << ": " << PQerrorMessage(conn_);
    PQclear(r);
  }

  /// The lock of a message id, as every instance takes it before it looks for the message or
  /// for a withdrawal of it (the same keys as the store's).
  void lock_message_id(const std::string& id) {
    exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' message-id'), hashtext('" +
         id + "'))");
  }

  /// The lock of a recipient's claims, as every instance takes it before it counts the
  /// recipient's deliveries in flight (the same keys as the store's).
  void lock_recipient(const std::string& recipient) {
    exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' recipient'), hashtext('" +
         recipient + "'))");
  }

 private:
  PGconn* conn_;
};

/// A withdrawal of message `original` by kh-cnp, routed before the original was stored.
message_record early_withdrawal_for(int n, int original) {
  message_record w = record_for(n, {"la-mps"});
  w.type = "case.status";
  w.withdraws = make_id(original);
  w.original_seen = false;
  return w;
}

TEST_F(PgStore, AWithdrawalWaitsForItsOriginalCommittingOnAnotherInstance) {
  auto a = instance();
  // Another instance is storing the original (kh-cnp's message 1, a copy due for la-mps) and has
  // not committed yet.
  pg_open_transaction other(pg_schema_for(dir_.path()));
  other.lock_message_id(make_id(1));
  other.exec(
      "INSERT INTO messages (id, sender, type, created, accepted_at, body_sha256, body) VALUES ('" +
      make_id(1) + "', 'kh-cnp', 'victim.identification', '2026-11-22T04:38:47Z', " +
      "'2026-11-22T04:38:47.123Z', 'sha', 'body'::bytea)");
  other.exec(
      "INSERT INTO deliveries (message_id, recipient, decided_by, payload, state, "
      "next_attempt_at) VALUES ('" +
      make_id(1) + "', 'la-mps', 'explicit', 'payload'::bytea, 'pending', 0)");
  // The withdrawal, routed when the original was not to be seen, is stored on this instance.
  std::promise<accept_result> p;
  auto f = p.get_future();
  a->accept(early_withdrawal_for(2, 1), [&p](accept_result r) { p.set_value(std::move(r)); });
  // It waits for the original's instance (its outcome depends on that commit) ...
  EXPECT_EQ(f.wait_for(500ms), std::future_status::timeout);
  other.exec("COMMIT");
  // ... and then finds the original stored: it must be routed again to reach its recipients.
  EXPECT_EQ(wait_for(f, "accept").outcome, accept_outcome::reroute);
  EXPECT_EQ(query("SELECT count(*) FROM early_withdrawals"), "0");
  message_record again = early_withdrawal_for(2, 1);
  again.original_seen = true;
  ASSERT_EQ(accept_now(*a, std::move(again)).outcome, accept_outcome::stored);
  EXPECT_EQ(query("SELECT state FROM deliveries WHERE message_id = '" + make_id(1) + "'"),
            "withdrawn");
}

TEST_F(PgStore, AnOriginalWaitsForItsWithdrawalCommittingOnAnotherInstance) {
  auto a = instance();
  // Another instance is storing a withdrawal of message 1 whose original it did not find, and has
  // not committed yet.
  pg_open_transaction other(pg_schema_for(dir_.path()));
  other.lock_message_id(make_id(1));
  other.exec("INSERT INTO early_withdrawals (original, sender, withdrawal, at_ms) VALUES ('" +
             make_id(1) + "', 'kh-cnp', '" + make_id(2) + "', 1764000000000)");
  std::promise<accept_result> p;
  auto f = p.get_future();
  a->accept(record_for(1, {"la-mps"}), [&p](accept_result r) { p.set_value(std::move(r)); });
  EXPECT_EQ(f.wait_for(500ms), std::future_status::timeout);
  other.exec("COMMIT");
  // The original is stored withdrawn: no copy of it is ever handed out.
  const accept_result o = wait_for(f, "accept");
  EXPECT_EQ(o.outcome, accept_outcome::stored);
  EXPECT_EQ(o.withdrawn_by, make_id(2));
  EXPECT_TRUE(claim_now(*a, "worker", 10).empty());
  EXPECT_EQ(query("SELECT state FROM deliveries WHERE message_id = '" + make_id(1) + "'"),
            "withdrawn");
}

// docs/delivery.md: never more than a partner's delivery.concurrency in flight at once, across
// every instance sharing the store. Each instance only knows its own deliveries in flight and
// passes what is left of the concurrency as the partner's cap; the store subtracts the others'.
TEST_F(PgStore, APartnersConcurrencyOfOneHoldsAcrossInstances) {
  manual_clock clock;
  auto a = instance("mxgw-a", clock.function());
  auto b = instance("mxgw-b", clock.function());
  for (int n = 0; n < 3; ++n) {
    ASSERT_EQ(accept_now(*a, record_for(n, {"la-mps", "interpol"})).outcome,
              accept_outcome::stored);
  }
  // la-mps takes one delivery at once; interpol is left out of these claims (cap 0).
  const std::vector<recipient_cap> one_la_mps{{"la-mps", 1}, {"interpol", 0}};
  // Nothing in flight anywhere: A may take one la-mps copy.
  const auto first = claim_capped(*a, "a", one_la_mps);
  ASSERT_EQ(first.size(), 1U);
  // B has nothing in flight, so it asks for one la-mps copy too: A's live lease leaves none.
  // Other partners are not held back by it.
  const auto refused = claim_capped(*b, "b", {{"la-mps", 1}, {"interpol", 3}});
  EXPECT_EQ(count_for(refused, "la-mps"), 0U);
  EXPECT_EQ(count_for(refused, "interpol"), 3U);
  // A's delivery ends: B may take one, and then A none.
  report_delivered(*a, first[0], "a");
  const auto second = claim_capped(*b, "b", one_la_mps);
  ASSERT_EQ(second.size(), 1U);
  EXPECT_TRUE(claim_capped(*a, "a", one_la_mps).empty());
  // B dies with its delivery in flight: once its lease has run out, A may take one again (the
  // lapsed copy itself, the oldest due), and then B none.
  clock.advance(31s);
  const auto third = claim_capped(*a, "a", one_la_mps);
  ASSERT_EQ(third.size(), 1U);
  EXPECT_EQ(third[0].message_id, second[0].message_id);
  EXPECT_EQ(third[0].attempt, 2);
  EXPECT_TRUE(claim_capped(*b, "b", one_la_mps).empty());
}

TEST_F(PgStore, ALargerConcurrencyIsSharedAndAClaimersOwnLeasesAreNotCountedTwice) {
  auto a = instance("mxgw-a");
  auto b = instance("mxgw-b");
  for (int n = 0; n < 5; ++n) {
    ASSERT_EQ(accept_now(*a, record_for(n, {"la-mps"})).outcome, accept_outcome::stored);
  }
  // la-mps takes two at once. A takes both; B, with none of its own, is left none.
  const auto taken = claim_capped(*a, "a", {{"la-mps", 2}});
  ASSERT_EQ(taken.size(), 2U);
  EXPECT_TRUE(claim_capped(*b, "b", {{"la-mps", 2}}).empty());
  // One of A's ends: A, one still in flight, asks for 2 - 1 and gets it (its own lease was
  // already subtracted by A, not subtracted again by the store).
  report_delivered(*a, taken[0], "a");
  EXPECT_EQ(claim_capped(*a, "a", {{"la-mps", 1}}).size(), 1U);
  EXPECT_TRUE(claim_capped(*b, "b", {{"la-mps", 2}}).empty());
  EXPECT_EQ(query("SELECT count(*) FROM deliveries WHERE state = 'delivering'"), "2");
}

TEST_F(PgStore, ManyOwnersClaimingAtOnceNeverExceedAPartnersConcurrency) {
  std::vector<std::unique_ptr<message_store>> instances;
  for (int i = 0; i < 3; ++i) {
    instances.push_back(instance("mxgw-" + std::to_string(i)));
  }
  for (int n = 0; n < 30; ++n) {
    ASSERT_EQ(accept_now(*instances[static_cast<std::size_t>(n % 3)],
                         record_for(n, {"la-mps", "interpol"}))
                  .outcome,
              accept_outcome::stored);
  }
  // Nine owners (three per instance), all claiming at once and again and again with concurrency
  // 1 for both partners, each passing what its own deliveries in flight leave of it (as the
  // delivery service does). Nothing is reported.
  std::atomic<int> la_mps{0};
  std::atomic<int> interpol{0};
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> threads;
  for (int t = 0; t < 9; ++t) {
    message_store& store = *instances[static_cast<std::size_t>(t % 3)];
    threads.emplace_back([&, start, owner = "owner-" + std::to_string(t)] {
      std::size_t own_la_mps = 0;
      std::size_t own_interpol = 0;
      start.wait();
      for (int round = 0; round < 15; ++round) {
        const auto jobs = claim_capped(
            store, owner, {{"la-mps", 1 - own_la_mps}, {"interpol", 1 - own_interpol}}, 5min);
        own_la_mps += count_for(jobs, "la-mps");
        own_interpol += count_for(jobs, "interpol");
        ASSERT_LE(own_la_mps, 1U);
        ASSERT_LE(own_interpol, 1U);
      }
      la_mps += static_cast<int>(own_la_mps);
      interpol += static_cast<int>(own_interpol);
    });
  }
  go.set_value();
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(la_mps.load(), 1);
  EXPECT_EQ(interpol.load(), 1);
  EXPECT_EQ(query("SELECT count(*) FROM deliveries WHERE state = 'delivering'"), "2");
}

TEST_F(PgStore, AClaimUnderWayOnAnotherInstanceIsNotRacedForAPartnersLastSlot) {
  auto b = instance("mxgw-b");
  for (int n = 0; n < 3; ++n) {
    ASSERT_EQ(accept_now(*b, record_for(n, {"la-mps"})).outcome, accept_outcome::stored);
  }
  // Another instance is in the middle of a claim for la-mps (concurrency 1) and has not
  // committed: it holds the recipient's lock and has leased message 1's copy (message 0's was
  // not due yet on its clock, a little behind). B cannot see that lease yet: it must not take
  // message 0's copy beside it.
  pg_open_transaction other(pg_schema_for(dir_.path()));
  other.lock_recipient("la-mps");
  other.exec(
      "UPDATE deliveries SET state = 'delivering', attempts = 1, lease_owner = 'other', "
      "lease_expires = 4102444800000 WHERE message_id = '" +
      make_id(1) + "' AND recipient = 'la-mps'");
  // B is answered at once (it does not wait for the other instance), with nothing for la-mps.
  EXPECT_TRUE(claim_capped(*b, "b", {{"la-mps", 1}}).empty());
  other.exec("COMMIT");
  // Committed, the other instance's lease is counted.
  EXPECT_TRUE(claim_capped(*b, "b", {{"la-mps", 1}}).empty());
  EXPECT_EQ(query("SELECT count(*) FROM deliveries WHERE state = 'delivering'"), "1");
}

TEST_F(PgStore, AWithdrawalStoredBeforeTheTableIsFoundInTheAuditChain) {
  {
    auto a = instance();
    message_record w = early_withdrawal_for(2, 1);
    w.audit.back().details = {{"type", "case.status"}, {"withdraws", make_id(1)}};
    ASSERT_EQ(accept_now(*a, std::move(w)).outcome, accept_outcome::stored);
    a->stop();
  }
  query(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; DROP TABLE early_withdrawals; "
      "UPDATE mxgw_schema SET version = 11");
  auto a = instance();
  const accept_result o = accept_now(*a, record_for(1, {"la-mps"}));
  EXPECT_EQ(o.outcome, accept_outcome::stored);
  EXPECT_EQ(o.withdrawn_by, make_id(2));
}

TEST_F(PgStore, TheAuditTableRefusesUpdatesAndDeletes) {
  auto a = instance();
  std::promise<bool> p;
  auto f = p.get_future();
  a->append_audit({{"one", "admin:x", "", "", {}}}, [&p](bool ok) { p.set_value(ok); });
  ASSERT_TRUE(wait_for(f, "append_audit"));
  PGconn* conn = PQconnectdb(pg_test_dsn().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
  for (const char* sql : {"UPDATE audit SET event = 'x'", "DELETE FROM audit", "TRUNCATE audit"}) {
    const std::string full = "SET search_path TO " + pg_schema_for(dir_.path()) + "; " + sql;
    PGresult* r = PQexec(conn, full.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR) << sql;
    EXPECT_NE(std::string(PQerrorMessage(conn)).find("append-only"), std::string::npos) << sql;
    PQclear(r);
  }
  PQfinish(conn);
  EXPECT_EQ(query("SELECT count(*) FROM audit"), "1");
}

TEST_F(PgStore, ANewerSchemaIsRefused) {
  instance()->stop();
  EXPECT_EQ(query("SELECT version FROM mxgw_schema"), std::to_string(postgres_schema_version));
  query("UPDATE mxgw_schema SET version = 99");
  try {
    instance();
    ADD_FAILURE() << "a newer schema was opened";
  } catch (const store_error& e) {
    EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  EXPECT_EQ(query("SELECT version FROM mxgw_schema"), "99");  // left as it was
}

TEST_F(PgStore, AVersion4SchemaIsMigratedToTheCurrentIndexesAndKeepsItsRows) {
  constexpr const char* unread_indexes =
      "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
      "AND indexname IN ('messages_by_sender', 'audit_by_partner')";
  {
    auto a = instance();
    ASSERT_EQ(accept_now(*a, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
    a->stop();
  }
  EXPECT_EQ(query(unread_indexes), "0");
  // Back to what version 4 left: both indexes there, claims indexed by (state, next_attempt_at).
  query(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; "
      "DROP TABLE early_withdrawals; DROP TABLE person_keys; "
      "ALTER TABLE messages DROP COLUMN withdrawn_at; "
      "CREATE INDEX messages_by_sender ON messages (sender); "
      "CREATE INDEX audit_by_partner ON audit (partner, seq) WHERE partner <> ''; "
      "DROP INDEX deliveries_claim; "
      "CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at); "
      "ALTER TABLE messages DROP COLUMN facts, DROP COLUMN expires_at; "
      "DROP INDEX deliveries_held; "
      "ALTER TABLE deliveries DROP COLUMN hold, DROP COLUMN approvals, DROP COLUMN released_at; "
      "UPDATE mxgw_schema SET version = 4");
  ASSERT_EQ(query(unread_indexes), "2");
  auto b = instance();
  EXPECT_EQ(query("SELECT version FROM mxgw_schema"), "14");
  EXPECT_EQ(query(unread_indexes), "0");
  // Version 7: statistical facts; the message from before has none.
  EXPECT_EQ(query("SELECT length(facts) FROM messages"), "0");
  // Version 6: a claim reads each recipient's oldest due rows.
  EXPECT_EQ(query("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                  "AND indexname = 'deliveries_claim'"),
            "CREATE INDEX deliveries_claim ON " + pg_schema_for(dir_.path()) +
                ".deliveries USING btree (state, recipient, next_attempt_at, rid)");
  EXPECT_EQ(query("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                  "AND indexname = 'deliveries_due'"),
            "0");
  EXPECT_EQ(claim_now(*b, "w", 10).size(), 1U);
  EXPECT_EQ(accept_now(*b, record_for(1, {"la-mps"})).outcome, accept_outcome::duplicate);
  EXPECT_EQ(read_all_audit(*b).size(), 1U);
}

TEST_F(PgStore, APasswordInTheDsnIsRefusedWithoutRepeatingIt) {
  EXPECT_TRUE(dsn_has_password("host=127.0.0.1 password=Hunter2-secret"));
  EXPECT_TRUE(dsn_has_password("postgresql://mxgw:Hunter2-secret@127.0.0.1/db"));
  EXPECT_FALSE(dsn_has_password("host=127.0.0.1 dbname=mxgw"));
  for (const std::string& dsn : {pg_test_dsn() + " password=Hunter2-secret",
                                 std::string("postgresql://mxgw:Hunter2-secret@127.0.0.1:1/db"),
                                 std::string("host=127.0.0.1 password='Hunter2-secret")}) {
    postgres_options options = pg_options_for(dir_.path(), {});
    options.dsn = dsn;
    try {
      open_postgres_store(options);
      ADD_FAILURE() << "opened";
    } catch (const store_error& e) {
      EXPECT_EQ(std::string(e.what()).find("Hunter2"), std::string::npos) << e.what();
    }
  }
}

TEST_F(PgStore, ThePasswordIsNeverLoggedNorInErrors) {
  const auto log_file = dir_ / "log.jsonl";
  log::init({log::level::debug, log_file});
  const std::string password = "Pw-0f-the-liaison-office";
  // A server that is not there: the open fails, and its error does not carry the password.
  postgres_options unreachable = pg_options_for(dir_.path(), {});
  unreachable.dsn = "host=127.0.0.1 port=1 user=mxgw dbname=postgres connect_timeout=2";
  unreachable.password = password;
  try {
    open_postgres_store(unreachable);
    ADD_FAILURE() << "opened";
  } catch (const store_error& e) {
    EXPECT_EQ(std::string(e.what()).find(password), std::string::npos) << e.what();
  }
  // A working store whose connections are cut: the loss and the reconnect are logged.
  postgres_options options = pg_options_for(dir_.path(), {});
  options.dsn += " application_name=mxgw-pw-test";
  options.password = password;  // trust authentication ignores it; libpq still holds it
  options.reconnect_min = 10ms;
  auto store = open_postgres_store(options);
  ASSERT_EQ(accept_now(*store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  pg_exec(
      "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity "
      "WHERE application_name = 'mxgw-pw-test'");
  accept_result r;
  for (int n = 2; n < 200 && r.outcome != accept_outcome::stored; ++n) {
    r = accept_now(*store, record_for(n, {"la-mps"}));
    if (r.outcome != accept_outcome::stored) {
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_EQ(r.outcome, accept_outcome::stored);
  store->stop();
  log::init({});
  const std::string logged = test::read_file(log_file);
  EXPECT_NE(logged.find("store.connection_lost"), std::string::npos) << logged;
  EXPECT_EQ(logged.find(password), std::string::npos) << logged;
}

TEST_F(PgStore, ALostConnectionAnswersUnavailableThenReconnects) {
  auto store = instance("mxgw-loss-test");
  ASSERT_EQ(accept_now(*store, record_for(1, {"la-mps"})).outcome, accept_outcome::stored);
  pg_exec(
      "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity "
      "WHERE application_name = 'mxgw-loss-test'");
  // The next batch finds the connection gone: answered unavailable, nothing half-written.
  const accept_result lost = accept_now(*store, record_for(2, {"la-mps"}));
  EXPECT_EQ(lost.outcome, accept_outcome::unavailable);
  EXPECT_EQ(lost.reason, "store-unreachable");
  EXPECT_TRUE(store->healthy()) << "a lost connection is not a fail-stop";
  // Resent (as a partner does after a 503) until the store has reconnected.
  accept_result again;
  for (int i = 0; i < 200 && again.outcome == accept_outcome::unavailable; ++i) {
    again = accept_now(*store, record_for(2, {"la-mps"}));
    if (again.outcome == accept_outcome::unavailable) {
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_EQ(again.outcome, accept_outcome::stored);
  // The reader reconnects the same way.
  bool found = false;
  for (int i = 0; i < 200 && !found; ++i) {
    std::promise<bool> p;
    auto f = p.get_future();
    store->find(make_id(2), [&p](std::optional<message_status> s, bool ok) {
      p.set_value(ok && s.has_value());
    });
    found = wait_for(f, "find");
    if (!found) {
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_GE(postgres_stats(*store).reconnects, 1U);
  EXPECT_EQ(query("SELECT count(*) FROM messages"), "2");
}

}  // namespace
}  // namespace mxgw::store
