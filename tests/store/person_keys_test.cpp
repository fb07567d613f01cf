// The keyed digests of persons in the store, on every backend, plain and with encryption at rest
// (StorePersonKeys): the keys stored with a message are found from another message sharing a
// digest of the same kind, in the header's order and up to the limit; an unknown message gives
// nullopt, a message without keys an empty list; a duplicate accept writes no keys; the keys of a
// message go when its sender withdraws it and when retention empties its body (its period or its
// expiry), and nobody else's; they survive a reopen. A withdrawal by the sender marks the
// original (withdrawn_at). Keys made anew (rekey_persons): in id order and in batches, replacing a
// message's keys or leaving them (nullopt), never for a purged or withdrawn message (which ends
// with none), the body shown opened, and a keyer that throws changing nothing. Migration of files
// and schemas from before (SqlitePersonKeys, PgPersonKeys).
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

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

// ---------------------------------------------------------------------------------------------
// Records

/// A 32-byte digest of its own for each n: raw bytes, with a NUL and bytes above 0x7f in it, as
/// an HMAC gives them (so no backend can get away with keeping them as text).
std::string digest(int n) {
  std::string bytes(32, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>((n * 37 + static_cast<int>(i) * 11) & 0xff);
  }
  bytes[7] = '\0';
  bytes[8] = '\xff';
  return bytes;
}

/// Lower-case hex of a digest, as the tests read it back from the database underneath.
std::string hex_of(const std::string& bytes) {
  constexpr const char* digits = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 0x0f];
  }
  return out;
}

person_key key(std::string pointer, std::string kind, int digest_n) {
  return {std::move(pointer), std::move(kind), digest(digest_n)};
}

/// Message n of `sender` with its person keys and copies.
message_record record_of(int n, std::vector<person_key> keys, std::string sender = "kh-cnp",
                         std::vector<delivery_plan> copies = {}) {
  const std::string body = R"({"case":)" + std::to_string(n) + "}";
  message_record record{make_id(n),
                        std::move(sender),
                        "victim.identification",
                        "2026-11-22T04:38:47Z",
                        fingerprint(body),
                        body};
  record.person_keys = std::move(keys);
  record.deliveries = std::move(copies);
  return record;
}

/// A withdrawal by `sender` of message `original`, stored with its audit entry as the gateway
/// writes it (message.accepted, the sender as partner, `withdraws` among the details).
message_record withdrawal_of(int n, int original, const std::string& sender) {
  message_record withdrawal = record_of(n, {}, sender);
  withdrawal.withdraws = make_id(original);
  withdrawal.original_seen = true;
  withdrawal.audit = {{.event = "message.accepted",
                       .actor = "partner:" + sender,
                       .partner = sender,
                       .message_id = make_id(n),
                       .details = {{"type", "case.status"}, {"withdraws", make_id(original)}}}};
  return withdrawal;
}

delivery_plan copy_for(const std::string& recipient) {
  return {recipient, "explicit", R"({"to":")" + recipient + R"("})", "[]"};
}

/// A match as one line: "<pointer> <kind> -> <id> <other pointer> (<sender>, <type>, <time>)".
std::string row(const std::string& pointer, const std::string& kind, const std::string& id,
                const std::string& other_pointer, const std::string& sender,
                const std::string& type, const std::string& accepted_at) {
  return pointer + " " + kind + " -> " + id + " " + other_pointer + " (" + sender + ", " + type +
         ", " + accepted_at + ")";
}

/// The tests' own constants, always valid RFC 3339.
time_point at(const char* rfc3339) {
  return parse_rfc3339(rfc3339).value();
}

// ---------------------------------------------------------------------------------------------
// Every backend, plain and sealed

class StorePersonKeys : public sealable_store_test {
 protected:
  accept_result accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    return wait_for(f, "accept");
  }

  /// How many matches message n has (0 as well when it is unknown).
  std::size_t match_count(int n) {
    return matches_of(n).value_or(std::vector<std::string>{}).size();
  }

  /// Accepts the record, which must be stored, and gives its accepted_at.
  std::string stored(message_record record) {
    const accept_result result = accept(std::move(record));
    EXPECT_EQ(result.outcome, accept_outcome::stored);
    return result.accepted_at;
  }

  /// The matches of message n, one line each (row()); nullopt when the store says it is unknown.
  std::optional<std::vector<std::string>> matches_of(int n, std::size_t limit = 100) {
    using answer = std::pair<std::optional<std::vector<person_match>>, bool>;
    std::promise<answer> p;
    auto f = p.get_future();
    store_->find_person_matches(make_id(n), limit,
                                [&p](std::optional<std::vector<person_match>> m, bool ok) {
                                  p.set_value({std::move(m), ok});
                                });
    const auto [matches, ok] = wait_for(f, "find_person_matches");
    EXPECT_TRUE(ok);
    if (!matches) {
      return std::nullopt;
    }
    std::vector<std::string> rows;
    for (const auto& m : *matches) {
      rows.push_back(
          row(m.pointer, m.kind, m.message_id, m.other_pointer, m.sender, m.type, m.accepted_at));
    }
    return rows;
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

  void report_delivered(const delivery_job& job) {
    attempt_report r{job.message_id, job.recipient, "worker", attempt_result::delivered};
    r.attempt = job.attempt;
    r.receipt = R"({"ref":"R-1"})";
    std::promise<bool> p;
    auto f = p.get_future();
    store_->report(std::move(r), [&p](bool ok) { p.set_value(ok); });
    EXPECT_TRUE(wait_for(f, "report"));
  }

  purge_result purge(retention_cut cut) {
    std::promise<std::pair<purge_result, bool>> p;
    auto f = p.get_future();
    store_->purge(std::move(cut), [&p](purge_result r, bool ok) { p.set_value({r, ok}); });
    const auto [result, ok] = wait_for(f, "purge");
    EXPECT_TRUE(ok);
    return result;
  }

  /// The first column of the first row of `sql` on the database underneath.
  std::string query(const std::string& sql) {
    if (GetParam().base.name == "postgres") {
      return pg_exec("SET search_path TO " + pg_schema_for(dir_.path()) + "; " + sql);
    }
    return raw_db(dir_ / "store.db").text(sql);
  }

  /// How many keys message n has in the database underneath.
  std::string keys_stored_for(int n) {
    if (GetParam().base.name == "postgres") {
      return query("SELECT count(*) FROM person_keys WHERE message_id = '" + make_id(n) + "'");
    }
    return query(
        "SELECT count(*) FROM person_keys WHERE message_seq = "
        "(SELECT seq FROM messages WHERE id = '" +
        make_id(n) + "')");
  }

  /// Adds a key (document, digest `digest_n`) to message n behind the store's back.
  void plant_key(int n, int digest_n) {
    if (GetParam().base.name == "postgres") {
      query("INSERT INTO person_keys (message_id, pointer, kind, digest) VALUES ('" + make_id(n) +
            "', '/body/planted', 'document', decode('" + hex_of(digest(digest_n)) + "', 'hex'))");
      return;
    }
    raw_db(dir_ / "store.db")
        .exec(
            "INSERT INTO person_keys (message_seq, pointer, kind, digest) VALUES ("
            "(SELECT seq FROM messages WHERE id = '" +
            make_id(n) + "'), '/body/planted', 'document', x'" + hex_of(digest(digest_n)) + "')");
  }

  /// Message n's withdrawn_at in the database underneath ("null" when it is not set).
  std::string withdrawn_at_of(int n) {
    return query("SELECT coalesce(CAST(withdrawn_at AS TEXT), 'null') FROM messages WHERE id = '" +
                 make_id(n) + "'");
  }

  /// `sender`'s withdrawal (message n) of message `original`.
  static message_record withdrawal_of(int n, int original, std::string sender) {
    message_record withdrawal = record_of(n, {}, std::move(sender));
    withdrawal.type = "case.status";
    withdrawal.withdraws = make_id(original);
    withdrawal.original_seen = true;
    return withdrawal;
  }

  using rekey_answer = std::pair<message_store::person_rekey_result, bool>;

  rekey_answer rekey(std::string after_id, std::size_t max_messages,
                     message_store::person_keyer keyer) {
    std::promise<rekey_answer> p;
    auto f = p.get_future();
    store_->rekey_persons(std::move(after_id), max_messages, std::move(keyer),
                          [&p](message_store::person_rekey_result r, bool ok) {
                            p.set_value({std::move(r), ok});
                          });
    return wait_for(f, "rekey_persons");
  }

  /// Stops the store and opens it again on the same database (and decorator).
  void reopen() {
    store_->stop();
    raw_->stop();
    store_.reset();
    raw_.reset();
    raw_ = std::shared_ptr<message_store>(GetParam().base.open(dir_.path(), clock_.function()));
    store_ = GetParam().sealed ? encrypt_at_rest(raw_, one_key_ring()) : raw_;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StorePersonKeys, ::testing::ValuesIn(sealable_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------------------------
// Matching

TEST_P(StorePersonKeys, AKeyIsFoundFromAnotherMessageWithTheSameDigestOfTheSameKind) {
  const std::string first = stored(record_of(
      1, {key("/body/person", "document", 10), key("/body/person", "name", 11)}, "kh-cnp"));
  clock_.advance(1s);
  message_record second = record_of(2, {key("/body/victim", "document", 10)}, "vn-gialai");
  second.type = "missing.person";
  const std::string second_at = stored(std::move(second));
  clock_.advance(1s);
  stored(record_of(3, {key("/body/person", "document", 12)}, "la-mps"));  // shares nothing

  EXPECT_EQ(matches_of(2),
            (std::vector<std::string>{row("/body/victim", "document", make_id(1), "/body/person",
                                          "kh-cnp", "victim.identification", first)}));
  EXPECT_EQ(matches_of(1),
            (std::vector<std::string>{row("/body/person", "document", make_id(2), "/body/victim",
                                          "vn-gialai", "missing.person", second_at)}));
  EXPECT_EQ(matches_of(3), std::vector<std::string>{});
  // accepted_at as the store writes it everywhere: RFC 3339 UTC with milliseconds.
  EXPECT_EQ(first, "2026-11-22T04:38:47.123Z");
}

TEST_P(StorePersonKeys, TheSameDigestOfAnotherKindIsNoMatch) {
  stored(record_of(1, {key("/body/person", "name", 10)}));
  stored(record_of(2, {key("/body/person", "name-birth-year", 10)}));
  stored(record_of(3, {key("/body/person", "document", 10)}));

  EXPECT_EQ(matches_of(1), std::vector<std::string>{});
  EXPECT_EQ(matches_of(2), std::vector<std::string>{});
  EXPECT_EQ(matches_of(3), std::vector<std::string>{});
}

TEST_P(StorePersonKeys, MatchesComeByPointerThenAcceptanceThenOtherPointerThenKindUpToTheLimit) {
  // The message asked about is accepted first: its own time orders nothing. Its keys are given
  // out of order, and /body/a has two documents that both match the same person of message 9
  // (one row for them, not two).
  stored(record_of(5, {key("/body/b", "name", 3), key("/body/a", "name", 2),
                       key("/body/a", "document", 1), key("/body/a", "document", 4)}));
  clock_.advance(1s);
  // Message 9 is accepted before message 2: acceptance, not the id, orders the other messages.
  const std::string early =
      stored(record_of(9,
                       {key("/body/x", "name", 2), key("/body/x", "document", 1),
                        key("/body/x", "document", 4), key("/body/w", "name", 2)},
                       "vn-gialai"));
  clock_.advance(1s);
  const std::string late =
      stored(record_of(2, {key("/body/d", "name", 3), key("/body/c", "document", 1)}, "la-mps"));

  const std::string type = "victim.identification";
  const std::vector<std::string> all = {
      row("/body/a", "name", make_id(9), "/body/w", "vn-gialai", type, early),
      row("/body/a", "document", make_id(9), "/body/x", "vn-gialai", type, early),
      row("/body/a", "name", make_id(9), "/body/x", "vn-gialai", type, early),
      row("/body/a", "document", make_id(2), "/body/c", "la-mps", type, late),
      row("/body/b", "name", make_id(2), "/body/d", "la-mps", type, late),
  };
  EXPECT_EQ(matches_of(5), all);
  EXPECT_EQ(matches_of(5, 3), std::vector<std::string>(all.begin(), all.begin() + 3));
  EXPECT_EQ(matches_of(5, 1), std::vector<std::string>(all.begin(), all.begin() + 1));
  EXPECT_EQ(matches_of(5, 0), std::vector<std::string>{});  // known, but nothing asked for
}

TEST_P(StorePersonKeys, AnUnknownMessageGivesNulloptAndOneWithoutKeysAnEmptyList) {
  stored(record_of(1, {}));
  stored(record_of(2, {key("/body/person", "document", 10)}));

  EXPECT_EQ(matches_of(7), std::nullopt);
  EXPECT_EQ(matches_of(1), std::vector<std::string>{});
  EXPECT_EQ(keys_stored_for(1), "0");
}

TEST_P(StorePersonKeys, TheDigestsAreStoredAsGivenAndAKeyNamedTwiceOnce) {
  // The same key twice in one record (a bug upstream) is kept once and fails nothing.
  stored(record_of(1, {key("/body/person", "document", 10), key("/body/person", "document", 10),
                       key("/body/person", "name", 11)}));
  EXPECT_EQ(keys_stored_for(1), "2");
  // With encryption at rest too: the digests are keyed hashes already, kept as they came.
  const std::string hex =
      GetParam().base.name == "postgres" ? "encode(digest, 'hex')" : "lower(hex(digest))";
  EXPECT_EQ(query("SELECT " + hex + " FROM person_keys WHERE kind = 'document'"),
            hex_of(digest(10)));
  EXPECT_EQ(query("SELECT " + hex + " || ' ' || pointer FROM person_keys WHERE kind = 'name'"),
            hex_of(digest(11)) + " /body/person");
}

TEST_P(StorePersonKeys, ADuplicateOrAConflictingAcceptWritesNoKeys) {
  message_record original = record_of(1, {key("/body/person", "document", 10)});
  stored(original);

  // The same id and bytes again, now with more keys: a duplicate, nothing written.
  message_record again = original;
  again.person_keys.push_back(key("/body/other", "document", 20));
  EXPECT_EQ(accept(again).outcome, accept_outcome::duplicate);
  // The same id with other bytes: a conflict, nothing written either.
  message_record other_bytes = again;
  other_bytes.body = R"({"case":"other"})";
  other_bytes.body_sha256 = fingerprint(other_bytes.body);
  EXPECT_EQ(accept(other_bytes).outcome, accept_outcome::conflict);

  EXPECT_EQ(keys_stored_for(1), "1");
  stored(record_of(2, {key("/body/person", "document", 20)}));
  EXPECT_EQ(matches_of(2), std::vector<std::string>{});
  EXPECT_EQ(matches_of(1), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------------
// Withdrawals

TEST_P(StorePersonKeys, AWithdrawalByTheSenderRemovesTheOriginalsKeysWhateverItsCopies) {
  // The original's copies are out of reach of the withdrawal: one delivered, one in flight.
  stored(record_of(1, {key("/body/person", "document", 10)}, "kh-cnp",
                   {copy_for("la-mps"), copy_for("interpol")}));
  for (const auto& job : claim()) {
    if (job.recipient == "la-mps") {
      report_delivered(job);
    }
  }
  const std::string other_at =
      stored(record_of(2, {key("/body/suspect", "document", 10)}, "vn-gialai"));
  ASSERT_EQ(match_count(1), 1U);

  message_record withdrawal = record_of(3, {}, "kh-cnp");
  withdrawal.type = "case.status";
  withdrawal.withdraws = make_id(1);
  withdrawal.original_seen = true;
  stored(std::move(withdrawal));

  // Matched no more, from either side; the original is still stored (an empty list, not nullopt).
  EXPECT_EQ(matches_of(2), std::vector<std::string>{});
  EXPECT_EQ(matches_of(1), std::vector<std::string>{});
  EXPECT_EQ(keys_stored_for(1), "0");
  // The other message keeps its keys: a new message with the same digest finds it.
  clock_.advance(1s);
  stored(record_of(4, {key("/body/person", "document", 10)}, "la-mps"));
  EXPECT_EQ(matches_of(4),
            (std::vector<std::string>{row("/body/person", "document", make_id(2), "/body/suspect",
                                          "vn-gialai", "victim.identification", other_at)}));
}

TEST_P(StorePersonKeys, AWithdrawalNamingAnotherSendersMessageLeavesItsKeys) {
  const std::string original_at =
      stored(record_of(1, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")}));
  stored(record_of(2, {key("/body/suspect", "document", 10)}, "vn-gialai"));

  message_record foreign = record_of(3, {}, "th-dsi");
  foreign.type = "case.status";
  foreign.withdraws = make_id(1);
  foreign.original_seen = true;
  stored(std::move(foreign));

  EXPECT_EQ(keys_stored_for(1), "1");
  EXPECT_EQ(matches_of(2),
            (std::vector<std::string>{row("/body/suspect", "document", make_id(1), "/body/person",
                                          "kh-cnp", "victim.identification", original_at)}));
}

// ---------------------------------------------------------------------------------------------
// Retention

TEST_P(StorePersonKeys, APurgeThatEmptiesABodyAfterItsPeriodRemovesItsKeys) {
  // Message 1 found no recipient; message 2's one copy is delivered. Both are past the period at
  // the sweep; message 3 is not.
  stored(record_of(1, {key("/body/person", "document", 10)}));
  stored(record_of(2, {key("/body/person", "name", 11)}, "kh-cnp", {copy_for("la-mps")}));
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);
  report_delivered(jobs.front());
  clock_.advance(24h * 31);
  const std::string kept_at = stored(record_of(
      3, {key("/body/victim", "document", 10), key("/body/victim", "name", 11)}, "vn-gialai"));
  ASSERT_EQ(match_count(3), 2U);

  const time_point now = clock_.now();
  const purge_result result = purge({.delivered_before = now - 24h * 30,
                                     .dead_before = now - 24h * 90,
                                     .max_rows = 1000,
                                     .actor = "gateway:test"});
  EXPECT_EQ(result.bodies, 2U);

  EXPECT_EQ(matches_of(3), std::vector<std::string>{});
  EXPECT_EQ(matches_of(1), std::vector<std::string>{});  // still known: its metadata stays
  EXPECT_EQ(matches_of(2), std::vector<std::string>{});
  EXPECT_EQ(keys_stored_for(1), "0");
  EXPECT_EQ(keys_stored_for(2), "0");
  // Only the emptied messages lost their keys: message 3 is still found.
  clock_.advance(1s);
  stored(record_of(4, {key("/body/person", "name", 11)}, "la-mps"));
  EXPECT_EQ(matches_of(4),
            (std::vector<std::string>{row("/body/person", "name", make_id(3), "/body/victim",
                                          "vn-gialai", "victim.identification", kept_at)}));
}

TEST_P(StorePersonKeys, APurgeOfAnExpiredMessageRemovesItsKeys) {
  // Message 1 expires at the end of November (its held copy goes with it); message 2 at the end
  // of the year; message 3 never. The sweep runs on 1 December, long before any period.
  message_record expiring =
      record_of(1, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")});
  expiring.deliveries.front().hold = "rule-four-eyes";
  expiring.expires_at = at("2026-11-30T23:59:59.999Z");
  stored(std::move(expiring));
  message_record later = record_of(2, {key("/body/person", "document", 10)}, "vn-gialai");
  later.expires_at = at("2026-12-31T23:59:59.999Z");
  const std::string later_at = stored(std::move(later));
  stored(record_of(3, {key("/body/victim", "document", 10)}, "la-mps", {copy_for("th-dsi")}));
  ASSERT_EQ(match_count(3), 2U);

  clock_.set(at("2026-12-01T00:00:00.000Z"));
  const time_point now = clock_.now();
  const purge_result result = purge({.delivered_before = now - 24h * 30,
                                     .dead_before = now - 24h * 90,
                                     .max_rows = 1000,
                                     .actor = "gateway:test",
                                     .expired_before = now});
  EXPECT_EQ(result.bodies, 1U);
  EXPECT_EQ(result.expired, 2U);  // the held copy and the body

  EXPECT_EQ(keys_stored_for(1), "0");
  EXPECT_EQ(matches_of(1), std::vector<std::string>{});
  EXPECT_EQ(matches_of(3),
            (std::vector<std::string>{row("/body/victim", "document", make_id(2), "/body/person",
                                          "vn-gialai", "victim.identification", later_at)}));
}

TEST_P(StorePersonKeys, AMessageWhoseHandlingExpiredIsNoCandidateAndHasNoneBeforeTheSweep) {
  // Message 1 expires at the end of November with a copy still queued, so no sweep would empty
  // it yet; its keys are still stored on 1 December. Messages 2 and 3 do not expire.
  message_record expiring =
      record_of(1, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")});
  expiring.expires_at = at("2026-11-30T23:59:59.999Z");
  const std::string expiring_at = stored(std::move(expiring));
  clock_.advance(1s);
  stored(record_of(2, {key("/body/person", "document", 10)}, "vn-gialai"));
  clock_.advance(1s);
  const std::string third_at =
      stored(record_of(3, {key("/body/victim", "document", 10)}, "la-mps"));
  ASSERT_EQ(matches_of(2),
            (std::vector<std::string>{row("/body/person", "document", make_id(1), "/body/person",
                                          "kh-cnp", "victim.identification", expiring_at),
                                      row("/body/person", "document", make_id(3), "/body/victim",
                                          "la-mps", "victim.identification", third_at)}));
  ASSERT_EQ(match_count(1), 2U);

  clock_.set(at("2026-12-01T00:00:00.000Z"));
  EXPECT_EQ(keys_stored_for(1), "1");
  EXPECT_EQ(matches_of(2),
            (std::vector<std::string>{row("/body/person", "document", make_id(3), "/body/victim",
                                          "la-mps", "victim.identification", third_at)}));
  EXPECT_EQ(matches_of(1), std::vector<std::string>{});  // stored: an empty list, not unknown
  EXPECT_EQ(match_count(3), 1U);
}

// ---------------------------------------------------------------------------------------------
// The mark of withdrawal

TEST_P(StorePersonKeys, AWithdrawalBySenderMarksTheOriginalOnceAndAnotherSendersDoesNot) {
  stored(record_of(1, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")}));
  stored(record_of(2, {}, "kh-cnp"));
  ASSERT_EQ(withdrawn_at_of(1), "null");

  // Another sender's withdrawal of it marks nothing.
  clock_.advance(1s);
  stored(withdrawal_of(3, 1, "th-dsi"));
  EXPECT_EQ(withdrawn_at_of(1), "null");

  // The sender's does, with its accept's time; a second one keeps the first time.
  clock_.advance(1s);
  const std::string withdrawn_ms = std::to_string(
      std::chrono::floor<std::chrono::milliseconds>(clock_.now().time_since_epoch()).count());
  stored(withdrawal_of(4, 1, "kh-cnp"));
  EXPECT_EQ(withdrawn_at_of(1), withdrawn_ms);
  clock_.advance(1s);
  stored(withdrawal_of(5, 1, "kh-cnp"));
  EXPECT_EQ(withdrawn_at_of(1), withdrawn_ms);

  // No other message is marked.
  for (const int n : {2, 3, 4, 5}) {
    EXPECT_EQ(withdrawn_at_of(n), "null") << n;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys made anew

TEST_P(StorePersonKeys, RekeyMakesTheKeysOfMessagesStoredWithoutThemFromTheirPlainBodies) {
  const std::string first_at = stored(record_of(1, {}, "kh-cnp"));
  clock_.advance(1s);
  stored(record_of(2, {}, "vn-gialai"));
  ASSERT_EQ(matches_of(2), std::vector<std::string>{});

  std::vector<std::string> seen;
  const auto [result, ok] = rekey("", 10, [&seen](std::string_view id, std::string_view body) {
    seen.push_back(std::string(id) + " " + std::string(body));
    return std::vector<person_key>{
        key(id == make_id(1) ? "/body/person" : "/body/victim", "document", 10)};
  });
  ASSERT_TRUE(ok);
  // The keyer sees each body as it was accepted (opened, with encryption at rest).
  EXPECT_EQ(seen, (std::vector<std::string>{make_id(1) + R"( {"case":1})",
                                            make_id(2) + R"( {"case":2})"}));
  EXPECT_EQ(result.messages, 2U);
  EXPECT_EQ(result.rekeyed, 2U);
  EXPECT_EQ(result.keys, 2U);
  EXPECT_EQ(result.last_id, make_id(2));

  EXPECT_EQ(keys_stored_for(1), "1");
  EXPECT_EQ(matches_of(2),
            (std::vector<std::string>{row("/body/victim", "document", make_id(1), "/body/person",
                                          "kh-cnp", "victim.identification", first_at)}));
}

TEST_P(StorePersonKeys, RekeyReplacesAMessagesKeysAndANulloptLeavesThem) {
  stored(record_of(1, {key("/body/person", "document", 10), key("/body/person", "name", 11)}));
  clock_.advance(1s);
  const std::string second_at = stored(record_of(2, {key("/body/person", "name", 11)}, "la-mps"));
  clock_.advance(1s);
  const std::string third_at =
      stored(record_of(3, {key("/body/victim", "document", 20)}, "vn-gialai"));

  // Message 1 gets one new key (named twice), message 2 is left as it is, message 3 gets none.
  const auto [result, ok] = rekey(
      "", 10, [](std::string_view id, std::string_view) -> std::optional<std::vector<person_key>> {
        if (id == make_id(1)) {
          return std::vector<person_key>{key("/body/subject", "document", 20),
                                         key("/body/subject", "document", 20)};
        }
        if (id == make_id(3)) {
          return std::vector<person_key>{};
        }
        return std::nullopt;
      });
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.messages, 3U);
  EXPECT_EQ(result.rekeyed, 2U);
  EXPECT_EQ(result.keys, 1U);

  // Replaced, not added to: digests 10 and 11 are gone from message 1.
  EXPECT_EQ(keys_stored_for(1), "1");
  EXPECT_EQ(keys_stored_for(2), "1");
  EXPECT_EQ(keys_stored_for(3), "0");
  EXPECT_EQ(matches_of(2), std::vector<std::string>{});
  // Message 2 kept its key: a new message with its digest finds it (and message 1 its new one).
  clock_.advance(1s);
  stored(record_of(4, {key("/body/person", "name", 11), key("/body/person", "document", 20)},
                   "th-dsi"));
  EXPECT_EQ(matches_of(4), (std::vector<std::string>{
                               row("/body/person", "document", make_id(1), "/body/subject",
                                   "kh-cnp", "victim.identification", "2026-11-22T04:38:47.123Z"),
                               row("/body/person", "name", make_id(2), "/body/person", "la-mps",
                                   "victim.identification", second_at)}));
  EXPECT_NE(third_at, "");
}

TEST_P(StorePersonKeys, RekeyVisitsMessagesInIdOrderByteWiseInBatches) {
  // Accepted out of id order; ids that differ in punctuation and case, which only byte-wise
  // order puts as "-" < "1" < "9" < "B" < "a".
  const std::string prefix = "00000000-0000-4000-8000-00000000000";
  const std::vector<std::string> accepted = {"a", "B", "1", "-", "9"};
  for (std::size_t i = 0; i < accepted.size(); ++i) {
    message_record record = record_of(static_cast<int>(i) + 1, {});
    record.id = prefix + accepted[i];
    stored(std::move(record));
    clock_.advance(1s);
  }

  std::vector<std::string> seen;
  const auto keyer = [&seen](std::string_view id, std::string_view) {
    seen.emplace_back(id.substr(id.size() - 1));
    return std::vector<person_key>{key("/body/person", "document", 10)};
  };
  std::vector<std::string> batches;
  std::string cursor;
  for (int i = 0; i < 10; ++i) {
    seen.clear();
    const auto [result, ok] = rekey(cursor, 2, keyer);
    ASSERT_TRUE(ok);
    std::string batch = std::to_string(result.messages) + ":";
    for (const auto& s : seen) {
      batch += s;
    }
    batches.push_back(batch + " " + (result.last_id.empty() ? "" : result.last_id.substr(35)));
    if (result.messages == 0) {
      EXPECT_EQ(result.last_id, "");
      break;
    }
    EXPECT_EQ(result.rekeyed, result.messages);
    EXPECT_EQ(result.keys, result.messages);
    cursor = result.last_id;
  }
  EXPECT_EQ(batches, (std::vector<std::string>{"2:-1 1", "2:9B B", "1:a a", "0: "}));

  // From the middle, and more than are left.
  seen.clear();
  const auto [rest, ok] = rekey(prefix + "9", 100, keyer);
  ASSERT_TRUE(ok);
  EXPECT_EQ(rest.messages, 2U);
  EXPECT_EQ(rest.last_id, prefix + "a");
  EXPECT_EQ(seen, (std::vector<std::string>{"B", "a"}));
}

TEST_P(StorePersonKeys, RekeyNeverShowsAPurgedOrWithdrawnMessageAndLeavesThemNoKeys) {
  // Message 1's body is purged; message 3 is withdrawn by its sender (message 4), message 5 by
  // another sender's message 6 (which withdraws nothing). Messages 2 and 5 are as accepted.
  stored(record_of(1, {key("/body/person", "document", 10)}));
  clock_.advance(24h * 31);
  const time_point now = clock_.now();
  ASSERT_EQ(purge({.delivered_before = now - 24h * 30,
                   .dead_before = now - 24h * 90,
                   .max_rows = 1000,
                   .actor = "gateway:test"})
                .bodies,
            1U);
  stored(record_of(2, {key("/body/person", "document", 10)}, "la-mps"));
  stored(record_of(3, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")}));
  stored(withdrawal_of(4, 3, "kh-cnp"));
  stored(record_of(5, {}, "vn-gialai"));
  stored(withdrawal_of(6, 5, "th-dsi"));
  // Keys they should not have (a bug, or keys written before the purge or withdrawal).
  plant_key(1, 10);
  plant_key(3, 10);
  ASSERT_EQ(keys_stored_for(1), "1");
  ASSERT_EQ(keys_stored_for(3), "1");

  std::vector<std::string> seen;
  const auto [result, ok] = rekey("", 10, [&seen](std::string_view id, std::string_view) {
    seen.emplace_back(id);
    return std::vector<person_key>{key("/body/person", "document", 10)};
  });
  ASSERT_TRUE(ok);
  EXPECT_EQ(seen, (std::vector<std::string>{make_id(2), make_id(4), make_id(5), make_id(6)}));
  EXPECT_EQ(result.messages, 6U);  // counted all the same
  EXPECT_EQ(result.rekeyed, 4U);
  EXPECT_EQ(result.last_id, make_id(6));
  EXPECT_EQ(keys_stored_for(1), "0");
  EXPECT_EQ(keys_stored_for(3), "0");
  EXPECT_EQ(keys_stored_for(5), "1");
  EXPECT_EQ(match_count(2), 3U);  // messages 4, 5 and 6; not 1 or 3
}

TEST_P(StorePersonKeys, RekeyNeverShowsAMessageWhoseHandlingExpiredAndDeletesItsKeys) {
  message_record expiring =
      record_of(1, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")});
  expiring.expires_at = at("2026-11-30T23:59:59.999Z");
  stored(std::move(expiring));
  stored(record_of(2, {key("/body/person", "document", 10)}, "la-mps"));
  clock_.set(at("2026-12-01T00:00:00.000Z"));
  ASSERT_EQ(keys_stored_for(1), "1");

  std::vector<std::string> seen;
  const auto [result, ok] = rekey("", 10, [&seen](std::string_view id, std::string_view) {
    seen.emplace_back(id);
    return std::vector<person_key>{key("/body/person", "document", 10)};
  });
  ASSERT_TRUE(ok);
  EXPECT_EQ(seen, std::vector<std::string>{make_id(2)});
  EXPECT_EQ(result.messages, 2U);
  EXPECT_EQ(keys_stored_for(1), "0");
  EXPECT_EQ(keys_stored_for(2), "1");
}

TEST_P(StorePersonKeys, AKeyerThatThrowsChangesNothing) {
  stored(record_of(1, {key("/body/person", "document", 10)}, "kh-cnp", {copy_for("la-mps")}));
  stored(withdrawal_of(2, 1, "kh-cnp"));
  plant_key(1, 10);  // a withdrawn message's key, which a batch that commits would delete
  stored(record_of(3, {key("/body/person", "document", 10)}, "la-mps"));
  stored(record_of(4, {key("/body/person", "name", 11)}, "vn-gialai"));

  const auto keyer = [](std::string_view id,
                        std::string_view) -> std::optional<std::vector<person_key>> {
    if (id == make_id(4)) {
      throw std::runtime_error("the keyer failed");
    }
    return std::vector<person_key>{key("/body/other", "name", 30)};
  };
  const auto [result, ok] = rekey("", 10, keyer);
  EXPECT_FALSE(ok);
  EXPECT_EQ(result.messages, 0U);
  EXPECT_EQ(result.last_id, "");

  // Every message of the batch keeps what it had, before and after the one that threw.
  EXPECT_EQ(keys_stored_for(1), "1");
  EXPECT_EQ(keys_stored_for(2), "0");
  EXPECT_EQ(keys_stored_for(3), "1");
  EXPECT_EQ(keys_stored_for(4), "1");
  // Message 1's planted key is still there, but a withdrawn message is no candidate.
  EXPECT_EQ(match_count(3), 0U);
  EXPECT_EQ(match_count(4), 0U);

  // The store goes on: the same batch without the failing message commits.
  const auto [after, after_ok] = rekey("", 3, keyer);
  EXPECT_TRUE(after_ok);
  EXPECT_EQ(after.rekeyed, 2U);
  EXPECT_EQ(keys_stored_for(1), "0");
  EXPECT_EQ(match_count(3), 1U);  // message 2's new key
}

TEST_P(StorePersonKeys, RekeyShowsABodyStoredInClearAsItIs) {
  // Accepted on the store underneath: with encryption at rest, as before it was turned on.
  message_record clear = record_of(1, {});
  std::promise<accept_result> p;
  auto f = p.get_future();
  raw_->accept(std::move(clear), [&p](accept_result r) { p.set_value(std::move(r)); });
  ASSERT_EQ(wait_for(f, "accept").outcome, accept_outcome::stored);

  std::vector<std::string> seen;
  const auto [result, ok] = rekey("", 10, [&seen](std::string_view, std::string_view body) {
    seen.emplace_back(body);
    return std::vector<person_key>{key("/body/person", "document", 10)};
  });
  ASSERT_TRUE(ok);
  EXPECT_EQ(seen, std::vector<std::string>{R"({"case":1})"});
  EXPECT_EQ(result.rekeyed, 1U);
  EXPECT_EQ(keys_stored_for(1), "1");
}

TEST_P(StorePersonKeys, WithEncryptionABodyThatDoesNotOpenIsNotShownAndKeepsItsKeys) {
  if (!GetParam().sealed) {
    GTEST_SKIP() << "a plain store shows every body as stored";
  }
  // Message 1 sealed under a key the store's ring does not have; message 2 under its own.
  auto other_ring = std::make_shared<key_ring>();
  data_key other;
  other.id = "k2";
  other.bytes.fill(2);
  other_ring->add(std::move(other));
  other_ring->set_active("k2");
  auto foreign = encrypt_at_rest(raw_, other_ring);
  std::promise<accept_result> p;
  auto f = p.get_future();
  foreign->accept(record_of(1, {key("/body/person", "document", 10)}),
                  [&p](accept_result r) { p.set_value(std::move(r)); });
  ASSERT_EQ(wait_for(f, "accept").outcome, accept_outcome::stored);
  stored(record_of(2, {}, "la-mps"));

  std::vector<std::string> seen;
  const auto [result, ok] = rekey("", 10, [&seen](std::string_view id, std::string_view body) {
    seen.push_back(std::string(id) + " " + std::string(body));
    return std::vector<person_key>{key("/body/victim", "name", 11)};
  });
  ASSERT_TRUE(ok);
  EXPECT_EQ(seen, std::vector<std::string>{make_id(2) + R"( {"case":2})"});
  EXPECT_EQ(result.messages, 2U);
  EXPECT_EQ(result.rekeyed, 1U);
  EXPECT_EQ(keys_stored_for(1), "1");
  EXPECT_EQ(keys_stored_for(2), "1");
}

// ---------------------------------------------------------------------------------------------
// Reopen

TEST_P(StorePersonKeys, KeysSurviveAReopen) {
  const std::string first_at = stored(record_of(1, {key("/body/person", "document", 10)}));
  reopen();

  clock_.advance(1s);
  const std::string second_at =
      stored(record_of(2, {key("/body/victim", "document", 10)}, "vn-gialai"));
  EXPECT_EQ(matches_of(2),
            (std::vector<std::string>{row("/body/victim", "document", make_id(1), "/body/person",
                                          "kh-cnp", "victim.identification", first_at)}));
  reopen();
  EXPECT_EQ(matches_of(1),
            (std::vector<std::string>{row("/body/person", "document", make_id(2), "/body/victim",
                                          "vn-gialai", "victim.identification", second_at)}));
}

// ---------------------------------------------------------------------------------------------
// Migration

accept_outcome accept_on(message_store& store, message_record record) {
  std::promise<accept_result> p;
  auto f = p.get_future();
  store.accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
  return wait_for(f, "accept").outcome;
}

/// The ids of message n's matches on `store` ("unknown" when it gives nullopt).
std::string matched_ids_on(message_store& store, int n) {
  std::promise<std::optional<std::vector<person_match>>> p;
  auto f = p.get_future();
  store.find_person_matches(make_id(n), 10,
                            [&p](std::optional<std::vector<person_match>> m, bool ok) {
                              EXPECT_TRUE(ok);
                              p.set_value(std::move(m));
                            });
  const auto matches = wait_for(f, "find_person_matches");
  if (!matches) {
    return "unknown";
  }
  std::string ids;
  for (const auto& m : *matches) {
    ids += (ids.empty() ? "" : ",") + m.message_id;
  }
  return ids;
}

TEST(SqlitePersonKeys, AVersion14FileIsMigratedAndGetsTheTable) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options;
  options.path = path;
  options.busy_timeout_ms = 60000;
  {
    sqlite_store store(options);
    ASSERT_EQ(accept_on(store, record_of(1, {})), accept_outcome::stored);
    ASSERT_EQ(accept_on(store, record_of(7, {})), accept_outcome::stored);
    // Withdrawn before version 15: the first by its sender, the other by someone else.
    ASSERT_EQ(accept_on(store, withdrawal_of(5, 1, "kh-cnp")), accept_outcome::stored);
    ASSERT_EQ(accept_on(store, withdrawal_of(6, 7, "la-mps")), accept_outcome::stored);
  }
  // Back to what version 14 left.
  raw_db(path).exec(R"sql(
    ALTER TABLE deliveries DROP COLUMN approvals_required;
    ALTER TABLE deliveries DROP COLUMN relies_on;
    DROP TABLE early_withdrawals; DROP TABLE person_keys;
    ALTER TABLE messages DROP COLUMN withdrawn_at;
    PRAGMA user_version = 14;
  )sql");
  constexpr const char* schema =
      "SELECT group_concat(sql, '; ') FROM (SELECT sql FROM sqlite_master "
      "WHERE tbl_name = 'person_keys' ORDER BY type DESC)";
  constexpr const char* withdrawn_column =
      "SELECT type || ' ' || \"notnull\" || ' ' || coalesce(dflt_value, 'null') "
      "FROM pragma_table_info('messages') WHERE name = 'withdrawn_at'";
  ASSERT_EQ(raw_db(path).text(schema), "");
  ASSERT_EQ(raw_db(path).text(withdrawn_column), "");

  sqlite_store store(options);
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"), "18");
  EXPECT_EQ(raw_db(path).text(schema),
            "CREATE TABLE person_keys (\n"
            "        message_seq INTEGER NOT NULL,\n"
            "        pointer     TEXT NOT NULL,\n"
            "        kind        TEXT NOT NULL,\n"
            "        digest      BLOB NOT NULL,\n"
            "        PRIMARY KEY (message_seq, pointer, kind, digest)\n"
            "      ) WITHOUT ROWID");
  // The mark of withdrawal: NULL for the message stored before, set by a withdrawal (below).
  EXPECT_EQ(raw_db(path).text(withdrawn_column), "INTEGER 0 null");
  // The old message has no keys; new ones are stored and matched.
  EXPECT_EQ(matched_ids_on(store, 1), "");
  ASSERT_EQ(accept_on(store, record_of(2, {key("/body/person", "document", 10)})),
            accept_outcome::stored);
  ASSERT_EQ(accept_on(store, record_of(3, {key("/body/victim", "document", 10)})),
            accept_outcome::stored);
  EXPECT_EQ(matched_ids_on(store, 3), make_id(2));
  EXPECT_EQ(raw_db(path).text("SELECT group_concat(message_seq) FROM person_keys"), "5,6");
  // The message its sender withdrew before is marked from the audit chain, at that time.
  EXPECT_EQ(raw_db(path).text("SELECT group_concat(id) FROM messages WHERE withdrawn_at BETWEEN "
                              "1700000000000 AND 4102444800000"),
            make_id(1));
  EXPECT_EQ(raw_db(path).text("SELECT count(*) FROM messages WHERE withdrawn_at IS NOT NULL"), "1");
  ASSERT_EQ(accept_on(store,
                      [] {
                        message_record withdrawal = record_of(4, {});
                        withdrawal.withdraws = make_id(1);
                        withdrawal.original_seen = true;
                        return withdrawal;
                      }()),
            accept_outcome::stored);
  EXPECT_EQ(
      raw_db(path).text("SELECT group_concat(id) FROM messages WHERE withdrawn_at IS NOT NULL"),
      make_id(1));
}

TEST(PgPersonKeys, AVersion10SchemaIsMigratedAndGetsTheTable) {
  if (pg_test_dsn().empty()) {
    GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
  }
  test::temp_dir dir;
  const pg_scratch_schema scratch(dir.path());
  const std::string& schema = scratch.name;
  const auto query = [&scratch](const std::string& sql) { return scratch.query(sql); };
  {
    auto store = open_postgres_store(pg_options_for(dir.path(), {}));
    ASSERT_EQ(accept_on(*store, record_of(1, {})), accept_outcome::stored);
    ASSERT_EQ(accept_on(*store, record_of(7, {})), accept_outcome::stored);
    // Withdrawn before version 11: the first by its sender, the other by someone else.
    ASSERT_EQ(accept_on(*store, withdrawal_of(5, 1, "kh-cnp")), accept_outcome::stored);
    ASSERT_EQ(accept_on(*store, withdrawal_of(6, 7, "la-mps")), accept_outcome::stored);
  }
  // Back to what version 10 left.
  query(
      "ALTER TABLE deliveries DROP COLUMN approvals_required; "
      "ALTER TABLE deliveries DROP COLUMN relies_on; "
      "DROP TABLE early_withdrawals; DROP TABLE person_keys; ALTER TABLE messages DROP COLUMN "
      "withdrawn_at; "
      "UPDATE mxgw_schema SET version = 10");
  constexpr const char* columns =
      "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' "
      "ORDER BY ordinal_position) FROM information_schema.columns "
      "WHERE table_schema = current_schema() AND table_name = 'person_keys'";
  constexpr const char* withdrawn_column =
      "SELECT data_type || ' ' || is_nullable || ' ' || coalesce(column_default, 'null') "
      "FROM information_schema.columns WHERE table_schema = current_schema() "
      "AND table_name = 'messages' AND column_name = 'withdrawn_at'";
  ASSERT_EQ(query(columns), "");
  ASSERT_EQ(query(withdrawn_column), "");

  auto store = open_postgres_store(pg_options_for(dir.path(), {}));
  EXPECT_EQ(query("SELECT version FROM mxgw_schema"), "14");
  EXPECT_EQ(query(columns), "message_id text NO, pointer text NO, kind text NO, digest bytea NO");
  EXPECT_EQ(query("SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes "
                  "WHERE schemaname = current_schema() AND tablename = 'person_keys'"),
            "CREATE UNIQUE INDEX person_keys_pkey ON " + schema +
                ".person_keys USING btree (message_id, pointer, kind, digest)");
  // The mark of withdrawal: NULL for the message stored before, set by a withdrawal (below).
  EXPECT_EQ(query(withdrawn_column), "bigint YES null");
  // The old message has no keys; new ones are stored and matched.
  EXPECT_EQ(matched_ids_on(*store, 1), "");
  ASSERT_EQ(accept_on(*store, record_of(2, {key("/body/person", "document", 10)})),
            accept_outcome::stored);
  ASSERT_EQ(accept_on(*store, record_of(3, {key("/body/victim", "document", 10)})),
            accept_outcome::stored);
  EXPECT_EQ(matched_ids_on(*store, 3), make_id(2));
  EXPECT_EQ(query("SELECT count(*) FROM person_keys"), "2");
  // The message its sender withdrew before is marked from the audit chain, at that time.
  EXPECT_EQ(query("SELECT string_agg(id, ',') FROM messages WHERE withdrawn_at BETWEEN "
                  "1700000000000 AND 4102444800000"),
            make_id(1));
  EXPECT_EQ(query("SELECT count(*) FROM messages WHERE withdrawn_at IS NOT NULL"), "1");
  ASSERT_EQ(accept_on(*store,
                      [] {
                        message_record withdrawal = record_of(4, {});
                        withdrawal.withdraws = make_id(1);
                        withdrawal.original_seen = true;
                        return withdrawal;
                      }()),
            accept_outcome::stored);
  EXPECT_EQ(query("SELECT string_agg(id, ',') FROM messages WHERE withdrawn_at IS NOT NULL"),
            make_id(1));
}

}  // namespace
}  // namespace mxgw::store
