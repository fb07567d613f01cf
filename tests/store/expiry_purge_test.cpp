// Retention of messages whose `handling.expires` has ended (retention_cut::expired_before), on
// every backend, plain and with encryption at rest (StoreExpiryPurge): their copies that are not
// in delivery are emptied at once, whatever their age (a dead or held one becomes "expired"; a held
// one can no longer be released), their bodies once no copy is in delivery; copies in delivery and
// messages not yet expired are left alone; the audit entry counts them; max_rows pages them; and
// without expired_before nothing changes.
#include "gateway/audit/audit.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"
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

/// The time written in RFC 3339 (the tests' own constants: always valid).
time_point at(const char* rfc3339) {
  return parse_rfc3339(rfc3339).value();
}

/// The end of the `handling.expires` day of the expiring messages, and a later one.
const time_point end_of_november = at("2026-11-30T23:59:59.999Z");
const time_point end_of_year = at("2026-12-31T23:59:59.999Z");

const std::string release_rule = "rule-four-eyes";

std::string body_of(int n) {
  return R"({"case":)" + std::to_string(n) + R"(,"handling":{"expires":"2026-11-30"}})";
}

/// A copy for `recipient` with a payload of its own, held by `hold` (empty: not held).
delivery_plan copy_for(int n, const std::string& recipient, const std::string& hold = {}) {
  delivery_plan plan{recipient, "explicit",
                     R"({"case":)" + std::to_string(n) + R"(,"to":")" + recipient + R"("})", "[]"};
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

/// Every kind of copy an expiring message may have: la-mps delivered (with a receipt), th-dsi
/// dead (with an error text), vn-bca held, interpol (a copy of the body) still pending.
std::vector<delivery_plan> every_kind_of_copy(int n) {
  return {copy_for(n, "la-mps"), copy_for(n, "th-dsi"), copy_for(n, "vn-bca", release_rule),
          body_copy_for("interpol")};
}

/// What a purge gave, to compare in one expectation.
std::string counts(const purge_result& r) {
  return std::to_string(r.payloads) + " payloads, " + std::to_string(r.bodies) + " bodies, " +
         std::to_string(r.expired) + " expired";
}

class StoreExpiryPurge : public sealable_store_test {
 protected:
  void accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    ASSERT_EQ(wait_for(f, "accept").outcome, accept_outcome::stored);
  }

  /// Claims every due copy (none of interpol's unless `interpol` is set), with a lease of a minute.
  std::vector<delivery_job> claim(bool interpol = false) {
    std::vector<recipient_cap> caps;
    if (!interpol) {
      caps.push_back({"interpol", 0});
    }
    std::promise<std::vector<delivery_job>> p;
    auto f = p.get_future();
    store_->claim_due("worker", 100, 1min, std::move(caps),
                      [&p](std::vector<delivery_job> jobs, bool ok) {
                        EXPECT_TRUE(ok);
                        p.set_value(std::move(jobs));
                      });
    return wait_for(f, "claim");
  }

  void report(const delivery_job& job, attempt_result result, std::string error = {}) {
    attempt_report r{job.message_id, job.recipient, "worker", result};
    r.attempt = job.attempt;
    r.error = std::move(error);
    r.receipt = result == attempt_result::delivered ? R"({"ref":"R-1"})" : "";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
    EXPECT_TRUE(wait_for(f, "report"));
  }

  /// Claims the due copies (not interpol's) and settles them as every_kind_of_copy() says.
  void settle() {
    for (const auto& job : claim()) {
      if (job.recipient == "la-mps") {
        report(job, attempt_result::delivered);
      } else {
        report(job, attempt_result::dead, "422 refused: the case was read");
      }
    }
  }

  purge_result purge(retention_cut cut) {
    std::promise<std::pair<purge_result, bool>> p;
    auto f = p.get_future();
    store_->purge(std::move(cut), [&p](purge_result r, bool ok) { p.set_value({r, ok}); });
    const auto [result, ok] = wait_for(f, "purge");
    EXPECT_TRUE(ok);
    return result;
  }

  /// The cut of a sweep now: normal periods (30 and 90 days), expiry at now.
  retention_cut sweep_cut(std::size_t max_rows = 1000) {
    const time_point now = clock_.now();
    return {.delivered_before = now - 24h * 30,
            .dead_before = now - 24h * 90,
            .max_rows = max_rows,
            .actor = "gateway:test",
            .expired_before = now};
  }

  /// "state full|empty" of message n's copy for `recipient` (its payload, body mark, receipt and
  /// error text, as stored underneath).
  std::string copy_of(int n, const std::string& recipient) {
    std::promise<std::optional<message_status>> p;
    auto f = p.get_future();
    store_->find(make_id(n), [&p](std::optional<message_status> s, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(s));
    });
    const auto status = wait_for(f, "find");
    std::string state = "missing";
    for (const auto& r : status ? status->recipients : std::vector<recipient_status>{}) {
      if (r.recipient == recipient) {
        state = r.state;
      }
    }
    return state + " " +
           query(
               "SELECT CASE WHEN length(payload) > 0 OR payload_is_body OR length(receipt) > 0 "
               "OR length(last_error) > 0 THEN 'full' ELSE 'empty' END FROM deliveries "
               "WHERE message_id = '" +
               make_id(n) + "' AND recipient = '" + recipient + "'");
  }

  /// "kept" or "purged": message n's body, as stored underneath.
  std::string body_of_message(int n) {
    return query(
        "SELECT CASE WHEN purged_at IS NULL AND length(body) > 0 THEN 'kept' "
        "WHEN purged_at IS NOT NULL AND length(body) = 0 THEN 'purged' ELSE 'inconsistent' END "
        "FROM messages WHERE id = '" +
        make_id(n) + "'");
  }

  /// Every copy of message n and its body, in one string.
  std::string message(int n) {
    return "la-mps: " + copy_of(n, "la-mps") + "; th-dsi: " + copy_of(n, "th-dsi") +
           "; vn-bca: " + copy_of(n, "vn-bca") + "; interpol: " + copy_of(n, "interpol") +
           "; body: " + body_of_message(n);
  }

  /// What message n looks like before any purge (settled, interpol pending).
  static std::string untouched() {
    return "la-mps: delivered full; th-dsi: dead full; vn-bca: held full; interpol: pending full; "
           "body: kept";
  }

  /// The first column of the first row of `sql` on the database underneath.
  std::string query(const std::string& sql) {
    if (GetParam().base.name == "postgres") {
      return pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) + "; " + sql);
    }
    return raw_db(dir_ / "store.db").text(sql);
  }

  std::vector<held_copy> list_held() {
    std::promise<std::vector<held_copy>> p;
    auto f = p.get_future();
    store_->list_held(100, [&p](std::vector<held_copy> copies, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(copies));
    });
    return wait_for(f, "list_held");
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
                     .details = {{"rule", release_rule}}};
    std::promise<release_result> p;
    auto f = p.get_future();
    store_->decide_release(std::move(request), [&p](release_result r, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(r));
    });
    return wait_for(f, "decide_release").outcome;
  }

  /// The entries of the retention.purged audit entries, in order.
  std::vector<std::string> purge_entries() {
    std::promise<std::vector<audit::audit_row>> p;
    auto f = p.get_future();
    store_->read_audit(0, 1000, [&p](std::vector<audit::audit_row> rows, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(rows));
    });
    std::vector<std::string> entries;
    for (const auto& row : wait_for(f, "read_audit")) {
      if (row.event == "retention.purged") {
        entries.push_back(row.entry);
      }
    }
    return entries;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreExpiryPurge, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST_P(StoreExpiryPurge, AnExpiredMessagesCopiesNotInDeliveryAreEmptiedAtOnce) {
  accept(record_of(1, every_kind_of_copy(1), end_of_november));  // expires
  accept(record_of(2, every_kind_of_copy(2), end_of_year));      // later
  accept(record_of(3, every_kind_of_copy(3), std::nullopt));     // never
  accept(record_of(4, {}, end_of_november));                     // no recipient: only its body
  settle();
  ASSERT_EQ(message(1), untouched());

  // A millisecond before the end of its day the message has not expired yet.
  clock_.set(end_of_november - 1ms);
  EXPECT_EQ(counts(purge(sweep_cut())), "0 payloads, 0 bodies, 0 expired");
  EXPECT_EQ(message(1), untouched());
  EXPECT_EQ(body_of_message(4), "kept");

  // From its end on, nine days after delivery (not 30) and death (not 90): the delivered, dead and
  // held copies are emptied, the pending one is left to the delivery, and so is the body it
  // needs; the message without recipients loses its body.
  clock_.set(end_of_november);
  EXPECT_EQ(counts(purge(sweep_cut())), "3 payloads, 1 bodies, 4 expired");
  EXPECT_EQ(message(1),
            "la-mps: delivered empty; th-dsi: expired empty; vn-bca: expired empty; "
            "interpol: pending full; body: kept");
  EXPECT_EQ(body_of_message(4), "purged");
  EXPECT_EQ(message(2), untouched());
  EXPECT_EQ(message(3), untouched());

  // What is emptied is not counted again.
  clock_.set(end_of_november + 1h);
  EXPECT_EQ(counts(purge(sweep_cut())), "0 payloads, 0 bodies, 0 expired");
}

TEST_P(StoreExpiryPurge, AHeldCopyOfAnExpiredMessageCanNoLongerBeReleased) {
  accept(record_of(1, {copy_for(1, "vn-bca", release_rule)}, end_of_november));
  accept(record_of(2, {copy_for(2, "vn-bca", release_rule)}, end_of_year));
  ASSERT_EQ(list_held().size(), 2U);

  clock_.set(end_of_november + 1min);
  // Its only copy emptied and not in delivery: the body goes with it.
  EXPECT_EQ(counts(purge(sweep_cut())), "1 payloads, 1 bodies, 2 expired");
  EXPECT_EQ(copy_of(1, "vn-bca"), "expired empty");
  EXPECT_EQ(body_of_message(1), "purged");
  const auto held = list_held();
  ASSERT_EQ(held.size(), 1U);
  EXPECT_EQ(held[0].message_id, make_id(2));
  EXPECT_EQ(release(1, "vn-bca"), release_outcome::not_held);
  EXPECT_EQ(copy_of(1, "vn-bca"), "expired empty");
  EXPECT_TRUE(claim(true).empty());  // nothing was released to be sent
  // The message that has not expired is held and released as ever.
  EXPECT_EQ(copy_of(2, "vn-bca"), "held full");
  EXPECT_EQ(release(2, "vn-bca"), release_outcome::released);
}

TEST_P(StoreExpiryPurge, TheBodyStaysWhileACopyIsInDeliveryAndGoesOnceItIsDead) {
  accept(record_of(1, every_kind_of_copy(1), end_of_november));
  settle();
  clock_.set(end_of_november + 1min);
  EXPECT_EQ(counts(purge(sweep_cut())), "3 payloads, 0 bodies, 3 expired");

  // In delivery (claimed): still left alone.
  const auto jobs = claim(true);
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].payload, body_of(1));
  EXPECT_EQ(counts(purge(sweep_cut())), "0 payloads, 0 bodies, 0 expired");
  EXPECT_EQ(copy_of(1, "interpol"), "delivering full");
  EXPECT_EQ(body_of_message(1), "kept");

  // The delivery refuses to send it; the next sweep empties it and the body.
  report(jobs[0], attempt_result::dead, "handling-expired");
  EXPECT_EQ(counts(purge(sweep_cut())), "1 payloads, 1 bodies, 2 expired");
  EXPECT_EQ(message(1),
            "la-mps: delivered empty; th-dsi: expired empty; vn-bca: expired empty; "
            "interpol: expired empty; body: purged");
}

TEST_P(StoreExpiryPurge, TheAuditEntryCountsTheExpired) {
  accept(record_of(1, every_kind_of_copy(1), end_of_november));
  accept(record_of(2, {copy_for(2, "th-dsi")}, std::nullopt));
  settle();
  // A sweep with the periods only (the dead copies past their time, and message 2's body): no
  // `expired` detail, although message 1 has expired.
  clock_.set(end_of_november + 1min);
  retention_cut periods_only = sweep_cut();
  periods_only.dead_before = clock_.now();
  periods_only.expired_before.reset();
  EXPECT_EQ(counts(purge(periods_only)), "2 payloads, 1 bodies, 0 expired");
  // With expiry: message 1's delivered and held copies; what the periods take (message 3's dead
  // copy and its body) is counted, but not as expired.
  accept(record_of(3, {copy_for(3, "th-dsi")}, std::nullopt));
  settle();
  retention_cut both = sweep_cut();
  both.dead_before = clock_.now() + 1ms;
  EXPECT_EQ(counts(purge(both)), "3 payloads, 1 bodies, 2 expired");

  const auto entries = purge_entries();
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(entries[0].find("expired"), std::string::npos) << entries[0];
  EXPECT_NE(entries[1].find(R"("expired":"2")"), std::string::npos) << entries[1];
  EXPECT_NE(entries[1].find(R"("payloads":"3")"), std::string::npos) << entries[1];
  EXPECT_NE(entries[1].find(R"("bodies":"1")"), std::string::npos) << entries[1];
  // Nothing purged: no entry.
  EXPECT_EQ(counts(purge(sweep_cut())), "0 payloads, 0 bodies, 0 expired");
  EXPECT_EQ(purge_entries().size(), 2U);
}

TEST_P(StoreExpiryPurge, MaxRowsBoundsEachKindOfBothPurgesTogether) {
  // Five expired messages with one delivered copy each, and one that does not expire with a dead
  // copy past its time: six rows and six bodies to purge, two of each kind per transaction.
  for (int n = 1; n <= 5; ++n) {
    accept(record_of(n, {copy_for(n, "la-mps")}, end_of_november));
  }
  accept(record_of(6, {copy_for(6, "th-dsi")}, std::nullopt));
  settle();
  clock_.set(end_of_november + 1min);
  retention_cut cut = sweep_cut(2);
  cut.dead_before = clock_.now();

  // The expired first, then what the periods take, within the same bound.
  EXPECT_EQ(counts(purge(cut)), "2 payloads, 2 bodies, 4 expired");
  EXPECT_EQ(counts(purge(cut)), "2 payloads, 2 bodies, 4 expired");
  EXPECT_EQ(counts(purge(cut)), "2 payloads, 2 bodies, 2 expired");
  EXPECT_EQ(counts(purge(cut)), "0 payloads, 0 bodies, 0 expired");
  for (int n = 1; n <= 5; ++n) {
    EXPECT_EQ(copy_of(n, "la-mps") + ", " + body_of_message(n), "delivered empty, purged") << n;
  }
  EXPECT_EQ(copy_of(6, "th-dsi") + ", " + body_of_message(6), "expired empty, purged");
}

TEST_P(StoreExpiryPurge, WithoutExpiredBeforeAnExpiredMessageWaitsForItsPeriods) {
  accept(record_of(1, every_kind_of_copy(1), end_of_november));
  accept(record_of(2, {}, end_of_november));
  settle();
  clock_.set(end_of_november + 24h);
  retention_cut cut = sweep_cut();
  cut.expired_before.reset();
  EXPECT_EQ(counts(purge(cut)), "0 payloads, 0 bodies, 0 expired");
  EXPECT_EQ(message(1), untouched());
  EXPECT_EQ(body_of_message(2), "kept");
  EXPECT_EQ(list_held().size(), 1U);
  EXPECT_TRUE(purge_entries().empty());
}

TEST_P(StoreExpiryPurge, ExpiringMessagesAreFoundFromAnIndexOfTheirOwn) {
  // Only messages that expire and still have a body: a sweep never reads every message.
  const std::string definition =
      GetParam().base.name == "postgres"
          ? query(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname = 'messages_expiring'")
          : query("SELECT sql FROM sqlite_master WHERE name = 'messages_expiring'");
  EXPECT_NE(definition.find("(expires_at)"), std::string::npos) << definition;
  EXPECT_NE(definition.find("expires_at IS NOT NULL"), std::string::npos) << definition;
  EXPECT_NE(definition.find("purged_at IS NULL"), std::string::npos) << definition;
}

}  // namespace
}  // namespace mxgw::store
