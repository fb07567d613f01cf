// A withdrawal that arrives before the message it takes back (the original got a 503 and its
// sender sent it again after the withdrawal), on every backend, plain and with encryption at rest
// (StoreEarlyWithdrawal): the original is then stored withdrawn (the accept says by which
// withdrawal, its audit entry names it, every copy is 'withdrawn' with no payload, none is ever
// claimed, it has no person keys, and it is marked with the withdrawal's time); a resend of it is
// a duplicate; the withdrawal is kept across a reopen, is used up by the original, and takes back
// nothing of another sender's message with the same id. Withdrawals stored by a version before
// the table are found again in the audit chain (SqliteEarlyWithdrawal, and PgStore in
// pg_store_test.cpp with the race between two instances).
#include "gateway/store/message_store.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/sealable_store_test.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

/// Message n of `sender`, with a copy for each recipient (one of them held for release) and a
/// person key, and its `message.accepted` audit entry as the gateway writes it.
message_record original_of(int n, const std::string& sender = "kh-cnp") {
  const std::string body = R"({"case":)" + std::to_string(n) + "}";
  message_record record{make_id(n),        sender, "victim.identification", "2026-11-22T04:38:47Z",
                        fingerprint(body), body};
  record.deliveries.push_back({"la-mps", "explicit", R"({"to":"la-mps"})", "[]"});
  record.deliveries.push_back({"vn-gialai", "explicit", "", "[]", true});
  delivery_plan held{"interpol", "explicit", R"({"to":"interpol"})", "[]"};
  held.hold = "red-notice-four-eyes";
  record.deliveries.push_back(std::move(held));
  record.person_keys.push_back({"/body/victim", "document", std::string(32, '\x07')});
  record.audit.push_back({.event = "message.accepted",
                          .actor = "partner:" + sender,
                          .partner = sender,
                          .message_id = record.id,
                          .details = {{"type", record.type}}});
  return record;
}

/// `sender`'s withdrawal (message n) of message `original`, routed without it (not stored when
/// routing looked), with its audit entry.
message_record withdrawal_of(int n, int original, const std::string& sender = "kh-cnp") {
  const std::string body = R"({"withdraws":)" + std::to_string(original) + "}";
  message_record record{make_id(n),        sender, "case.status", "2026-11-22T04:38:47Z",
                        fingerprint(body), body};
  record.deliveries.push_back({"la-mps", "explicit", R"({"status":"withdrawn"})", "[]"});
  record.withdraws = make_id(original);
  record.original_seen = false;
  record.audit.push_back({.event = "message.accepted",
                          .actor = "partner:" + sender,
                          .partner = sender,
                          .message_id = record.id,
                          .details = {{"type", record.type}, {"withdraws", make_id(original)}}});
  return record;
}

class StoreEarlyWithdrawal : public sealable_store_test {
 protected:
  accept_result accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    return wait_for(f, "accept");
  }

  /// "<recipient>=<state>" for each copy of message n, in the status's order.
  std::vector<std::string> states_of(int n) {
    using answer = std::pair<std::optional<message_status>, bool>;
    std::promise<answer> p;
    auto f = p.get_future();
    store_->find(make_id(n), [&p](std::optional<message_status> s, bool ok) {
      p.set_value({std::move(s), ok});
    });
    const auto [status, ok] = wait_for(f, "find");
    EXPECT_TRUE(ok);
    std::vector<std::string> out;
    if (status) {
      for (const auto& r : status->recipients) {
        out.push_back(r.recipient + "=" + r.state);
      }
    }
    return out;
  }

  std::vector<delivery_job> claim() {
    std::promise<std::vector<delivery_job>> p;
    auto f = p.get_future();
    store_->claim_due("worker", 100, 1min, {}, [&p](std::vector<delivery_job> jobs, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(jobs));
    });
    return wait_for(f, "claim");
  }

  /// The message ids of the copies a claim hands out.
  std::vector<std::string> claimed_ids() {
    std::vector<std::string> ids;
    for (const auto& job : claim()) {
      ids.push_back(job.message_id);
    }
    return ids;
  }

  /// The audit entries' bytes that concern message n.
  std::vector<std::string> audit_of(int n) {
    std::promise<std::vector<audit::audit_row>> p;
    auto f = p.get_future();
    store_->read_audit(0, 100000, [&p](std::vector<audit::audit_row> rows, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(rows));
    });
    std::vector<std::string> out;
    for (const auto& row : wait_for(f, "read_audit")) {
      if (row.message_id == make_id(n)) {
        out.push_back(row.entry);
      }
    }
    return out;
  }

  /// The first column of the first row of `sql` on the database underneath.
  std::string query(const std::string& sql) {
    if (GetParam().base.name == "postgres") {
      return pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) + "; " + sql);
    }
    return raw_db(dir_ / "store.db").text(sql);
  }

  std::string person_keys_of(int n) {
    if (GetParam().base.name == "postgres") {
      return query("SELECT count(*) FROM person_keys WHERE message_id = '" + make_id(n) + "'");
    }
    return query(
        "SELECT count(*) FROM person_keys WHERE message_seq = "
        "(SELECT seq FROM messages WHERE id = '" +
        make_id(n) + "')");
  }

  /// The bytes of every copy's payload of message n, concatenated, as stored.
  std::string payload_bytes_of(int n) {
    return query(GetParam().base.name == "postgres"
                     ? "SELECT coalesce(sum(length(payload)), 0) FROM deliveries "
                       "WHERE message_id = '" +
                           make_id(n) + "'"
                     : "SELECT coalesce(sum(length(payload)), 0) FROM deliveries "
                       "WHERE message_seq = (SELECT seq FROM messages WHERE id = '" +
                           make_id(n) + "')");
  }

  void reopen() {
    store_->stop();
    raw_->stop();
    store_.reset();
    raw_.reset();
    raw_ = std::shared_ptr<message_store>(GetParam().base.open(dir_.path(), clock_.function()));
    store_ = GetParam().sealed ? encrypt_at_rest(raw_, one_key_ring()) : raw_;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreEarlyWithdrawal, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST_P(StoreEarlyWithdrawal, AnOriginalArrivingAfterItsWithdrawalIsStoredWithdrawn) {
  const accept_result w = accept(withdrawal_of(2, 1));
  ASSERT_EQ(w.outcome, accept_outcome::stored);
  EXPECT_EQ(w.withdrawn_by, "");
  const std::string withdrawn_ms = query(
      "SELECT CAST(at_ms AS TEXT) FROM early_withdrawals WHERE original = '" + make_id(1) + "'");
  ASSERT_FALSE(withdrawn_ms.empty()) << "the withdrawal was not kept for its original";

  clock_.advance(5s);
  const accept_result o = accept(original_of(1));
  ASSERT_EQ(o.outcome, accept_outcome::stored);
  EXPECT_EQ(o.withdrawn_by, make_id(2));
  // Its copies are withdrawn, the held one too, and none is ever handed out.
  EXPECT_EQ(states_of(1), (std::vector<std::string>{"interpol=withdrawn", "la-mps=withdrawn",
                                                    "vn-gialai=withdrawn"}));
  EXPECT_EQ(claimed_ids(), std::vector<std::string>{make_id(2)});  // the withdrawal's notice
  clock_.advance(1h);                                              // every lease has run out
  EXPECT_EQ(claimed_ids(), std::vector<std::string>{make_id(2)});
  EXPECT_EQ(payload_bytes_of(1), "0");
  EXPECT_EQ(person_keys_of(1), "0");
  // Marked with the withdrawal's time, not its own.
  EXPECT_EQ(
      query("SELECT CAST(withdrawn_at AS TEXT) FROM messages WHERE id = '" + make_id(1) + "'"),
      withdrawn_ms);
  // The audit says which withdrawal took it back; the withdrawal is used up.
  const auto entries = audit_of(1);
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_NE(entries[0].find(R"("withdrawnBy":")" + make_id(2) + "\""), std::string::npos)
      << entries[0];
  EXPECT_EQ(query("SELECT count(*) FROM early_withdrawals"), "0");

  // The sender sends it once more: a duplicate, still withdrawn.
  const accept_result again = accept(original_of(1));
  EXPECT_EQ(again.outcome, accept_outcome::duplicate);
  EXPECT_EQ(again.accepted_at, o.accepted_at);
  clock_.advance(1h);
  EXPECT_EQ(claimed_ids(), std::vector<std::string>{make_id(2)});
}

TEST_P(StoreEarlyWithdrawal, TheWithdrawalIsKeptAcrossAReopen) {
  ASSERT_EQ(accept(withdrawal_of(2, 1)).outcome, accept_outcome::stored);
  reopen();
  const accept_result o = accept(original_of(1));
  ASSERT_EQ(o.outcome, accept_outcome::stored);
  EXPECT_EQ(o.withdrawn_by, make_id(2));
  EXPECT_EQ(claimed_ids(), std::vector<std::string>{make_id(2)});  // the withdrawal's notice
}

TEST_P(StoreEarlyWithdrawal, TheFirstOfTwoWithdrawalsCounts) {
  ASSERT_EQ(accept(withdrawal_of(2, 1)).outcome, accept_outcome::stored);
  clock_.advance(1s);
  ASSERT_EQ(accept(withdrawal_of(3, 1)).outcome, accept_outcome::stored);
  EXPECT_EQ(accept(original_of(1)).withdrawn_by, make_id(2));
}

TEST_P(StoreEarlyWithdrawal, AnotherSendersWithdrawalTakesNothingBack) {
  ASSERT_EQ(accept(withdrawal_of(2, 1, "th-dsi")).outcome, accept_outcome::stored);
  const accept_result o = accept(original_of(1, "kh-cnp"));
  ASSERT_EQ(o.outcome, accept_outcome::stored);
  EXPECT_EQ(o.withdrawn_by, "");
  EXPECT_EQ(states_of(1),
            (std::vector<std::string>{"interpol=held", "la-mps=pending", "vn-gialai=pending"}));
  EXPECT_EQ(person_keys_of(1), "1");
  EXPECT_EQ(audit_of(1)[0].find("withdrawnBy"), std::string::npos);
}

TEST_P(StoreEarlyWithdrawal, AWithdrawalOfAStoredMessageKeepsNothingForLater) {
  ASSERT_EQ(accept(original_of(1)).outcome, accept_outcome::stored);
  message_record w = withdrawal_of(2, 1);
  w.original_seen = true;
  ASSERT_EQ(accept(std::move(w)).outcome, accept_outcome::stored);
  EXPECT_EQ(query("SELECT count(*) FROM early_withdrawals"), "0");
}

// ---------------------------------------------------------------------------------------------
// A file from before the table (version 15)

TEST(SqliteEarlyWithdrawal, AWithdrawalStoredBeforeTheTableIsFoundInTheAuditChain) {
  test::temp_dir dir;
  manual_clock clock;
  const auto open = [&] {
    sqlite_options options;
    options.path = dir / "store.db";
    options.clock = clock.function();
    return open_sqlite_store(options);
  };
  {
    auto store = open();
    std::promise<accept_result> p;
    auto f = p.get_future();
    store->accept(withdrawal_of(2, 1), [&p](accept_result r) { p.set_value(std::move(r)); });
    ASSERT_EQ(wait_for(f, "accept").outcome, accept_outcome::stored);
    store->stop();
  }
  {
    raw_db db(dir / "store.db");
    db.exec(
        "ALTER TABLE deliveries DROP COLUMN approvals_required; "
        "ALTER TABLE deliveries DROP COLUMN relies_on; DROP TABLE early_withdrawals; "
        "PRAGMA user_version = 15;");
  }
  auto store = open();
  std::promise<accept_result> p;
  auto f = p.get_future();
  store->accept(original_of(1), [&p](accept_result r) { p.set_value(std::move(r)); });
  const accept_result o = wait_for(f, "accept");
  store->stop();
  EXPECT_EQ(o.outcome, accept_outcome::stored);
  EXPECT_EQ(o.withdrawn_by, make_id(2));
}

}  // namespace
}  // namespace mxgw::store
