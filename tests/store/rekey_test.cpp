// Re-encryption under the active key (`rekey_store`, behind `mxgw keys rekey`), on every store
// backend: old records open with only the new key afterwards, an interrupted run is finished by a
// second one, a record whose key is missing is counted and left intact, and it is safe while a
// gateway keeps writing to the same store.
#include "gateway/store/sealed.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/store/sqlite_store.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::store {
namespace {

using namespace mxgw::store::test_helpers;

std::shared_ptr<const key_ring> ring_of(std::initializer_list<std::pair<const char*, int>> keys,
                                        const std::string& active) {
  auto ring = std::make_shared<key_ring>();
  for (const auto& [id, fill] : keys) {
    data_key key;
    key.id = id;
    key.bytes.fill(static_cast<unsigned char>(fill));
    ring->add(std::move(key));
  }
  ring->set_active(active);
  return ring;
}

/// A message with a body, its statistical facts and two payloads, each carrying a canary naming
/// its place.
message_record canary_record(int n) {
  const std::string id = make_id(n);
  const std::string body = R"({"names":[{"family":["CANARY-BODY-)" + std::to_string(n) + R"("]}]})";
  message_record r{
      id,  "kh-ratanakiri", "victim.identification", "2026-11-22T04:38:47Z", fingerprint(body),
      body};
  r.deliveries.push_back(
      {"vn-thanhhoa", "explicit", R"({"to":"CANARY-TH-)" + std::to_string(n) + R"("})", "[]"});
  r.deliveries.push_back(
      {"la-houaphanh", "rule-1", "<m>CANARY-LA-" + std::to_string(n) + "</m>", "[]"});
  r.facts = R"({"region":"CANARY-FACTS-)" + std::to_string(n) + R"("})";
  return r;
}

/// (message id, seal_purpose: "body", "facts", "to:<recipient>", "receipt:<recipient>" or
/// "error:<recipient>") -> stored bytes.
using value_map = std::map<std::pair<std::string, std::string>, std::string>;

/// What the recipients of message n answered: vn-thanhhoa a receipt, la-houaphanh a refusal that
/// quotes the message (as a partner's may).
std::string receipt_of(int n) {
  return R"({"receipt":"CANARY-RECEIPT-)" + std::to_string(n) + R"("})";
}
std::string refusal_of(int n) {
  return "http-422: family name CANARY-REFUSAL-" + std::to_string(n) + " is not on file";
}

class Rekey : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override {
    if (const auto reason = unavailable_reason(GetParam()); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
    raw_ = GetParam().open(dir_.path(), {});
  }
  void TearDown() override {
    if (raw_) {
      raw_->stop();
    }
    raw_.reset();
    if (GetParam().cleanup && unavailable_reason(GetParam()).empty()) {
      GetParam().cleanup(dir_.path());
    }
  }

  /// Accepts records through the encrypting decorator with `ring`.
  void accept_sealed(const std::shared_ptr<const key_ring>& ring, int from, int to) {
    auto sealed = encrypt_at_rest(raw_, ring);
    for (int n = from; n <= to; ++n) {
      ASSERT_EQ(accept(*sealed, canary_record(n)).outcome, accept_outcome::stored) << n;
    }
  }
  static accept_result accept(message_store& store, message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store.accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    if (f.wait_for(wait_limit) != std::future_status::ready) {
      ADD_FAILURE() << "accept: handler not called";
      return {};
    }
    return f.get();
  }

  /// Every stored body and payload, read through the store's own interface (a rewriter that
  /// changes nothing), so the same check works on every backend.
  value_map snapshot() {
    value_map out;
    std::string cursor;
    for (;;) {
      std::promise<rewrite_result> p;
      auto f = p.get_future();
      raw_->rewrite_values(
          cursor, 7,
          [&out](const stored_value& v) -> std::optional<std::string> {
            out[{v.message_id, seal_purpose(v.field, v.recipient)}] = v.bytes;
            return std::nullopt;
          },
          [&p](rewrite_result r, bool ok) {
            EXPECT_TRUE(ok);
            p.set_value(std::move(r));
          });
      const auto r = f.get();
      if (r.messages == 0) {
        return out;
      }
      cursor = r.last_id;
    }
  }

  /// Opens every value with `ring`; the plain texts by place (a value that does not open fails
  /// the test).
  value_map open_all(const key_ring& ring) {
    value_map plain;
    for (const auto& [place, bytes] : snapshot()) {
      const std::string context = seal_context(place.first, place.second);
      std::string why;
      const auto opened = open_sealed(ring, bytes, context, &why);
      EXPECT_TRUE(opened) << place.first << " " << place.second << ": " << why;
      if (opened) {
        plain[place] = *opened;
      }
    }
    return plain;
  }

  /// Overwrites every `field` value of message 2 (the message after make_id(1)) with `bytes`, as
  /// whoever can write the store could; true when the store took it.
  bool overwrite_in_second_message(value_field field, const std::string& bytes) {
    std::promise<bool> done;
    raw_->rewrite_values(
        make_id(1), 1,
        [field, &bytes](const stored_value& v) -> std::optional<std::string> {
          return v.field == field ? std::optional<std::string>(bytes) : std::nullopt;
        },
        [&done](rewrite_result, bool ok) { done.set_value(ok); });
    return done.get_future().get();
  }

  /// Claims every due delivery through `store` and answers them as message n's recipients do:
  /// a receipt from vn-thanhhoa, a refusal (dead letter) from la-houaphanh.
  static void answer_all(message_store& store, int n) {
    std::promise<std::vector<delivery_job>> claimed;
    store.claim_due(
        "w", 10, std::chrono::minutes(1), {},
        [&claimed](std::vector<delivery_job> jobs, bool) { claimed.set_value(std::move(jobs)); });
    const auto jobs = claimed.get_future().get();
    ASSERT_EQ(jobs.size(), 2U);
    for (const auto& job : jobs) {
      attempt_report report{job.message_id, job.recipient, "w"};
      report.attempt = job.attempt;
      if (job.recipient == "vn-thanhhoa") {
        report.result = attempt_result::delivered;
        report.receipt = receipt_of(n);
      } else {
        report.result = attempt_result::dead;
        report.error = refusal_of(n);
      }
      std::promise<bool> done;
      store.report(std::move(report), [&done](bool ok) { done.set_value(ok); });
      ASSERT_TRUE(done.get_future().get());
    }
  }
  static std::optional<message_status> find(message_store& store, const std::string& id) {
    std::promise<std::optional<message_status>> p;
    store.find(id, [&p](std::optional<message_status> s, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(s));
    });
    return p.get_future().get();
  }
  static std::vector<dead_letter> list_dead(message_store& store) {
    std::promise<std::vector<dead_letter>> p;
    store.list_dead(10, [&p](std::vector<dead_letter> dead, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(dead));
    });
    return p.get_future().get();
  }
  /// Message n's receipt and refusal as `store` shows them (status and dead letters).
  static void expect_texts_read(message_store& store, int n) {
    const auto status = find(store, make_id(n));
    ASSERT_TRUE(status);
    for (const auto& r : status->recipients) {
      if (r.recipient == "vn-thanhhoa") {
        EXPECT_EQ(r.receipt, receipt_of(n));
      } else {
        EXPECT_EQ(r.last_error, refusal_of(n));
      }
    }
    bool listed = false;
    for (const auto& letter : list_dead(store)) {
      if (letter.message_id == make_id(n)) {
        EXPECT_EQ(letter.last_error, refusal_of(n));
        listed = true;
      }
    }
    EXPECT_TRUE(listed) << n;
  }

  test::temp_dir dir_;
  std::shared_ptr<message_store> raw_;
};

TEST_P(Rekey, OldRecordsOpenWithOnlyTheNewKeyAfterwards) {
  const auto old_ring = ring_of({{"2026a", 1}}, "2026a");
  accept_sealed(old_ring, 1, 5);
  const value_map plain_before = open_all(*old_ring);
  ASSERT_EQ(plain_before.size(), 20U);

  const auto both = ring_of({{"2026a", 1}, {"2026b", 2}}, "2026b");
  const auto counts = rekey_store(*raw_, *both, {.batch_messages = 2});
  EXPECT_TRUE(counts.complete);
  EXPECT_FALSE(counts.failed);
  EXPECT_EQ(counts.resealed, 20U);
  EXPECT_EQ(counts.already_current + counts.key_missing + counts.corrupt, 0U);
  EXPECT_EQ(counts.messages, 5U);
  EXPECT_EQ(counts.batches, 3U);  // 2 + 2 + 1: bounded batches

  // The old key is gone from the ring: every body and payload still opens, in its own place.
  const auto new_only = ring_of({{"2026b", 2}}, "2026b");
  EXPECT_EQ(open_all(*new_only), plain_before);
  // And the workers get the payloads through the decorator with the new key alone.
  auto sealed = encrypt_at_rest(raw_, new_only);
  std::promise<std::vector<delivery_job>> p;
  auto f = p.get_future();
  sealed->claim_due("w", 100, std::chrono::minutes(1), {},
                    [&p](std::vector<delivery_job> jobs, bool) { p.set_value(std::move(jobs)); });
  const auto jobs = f.get();
  ASSERT_EQ(jobs.size(), 10U);
  for (const auto& job : jobs) {
    EXPECT_EQ(job.payload, plain_before.at({job.message_id, "to:" + job.recipient}));
  }

  // A second run finds everything current and changes no byte.
  const value_map after_first = snapshot();
  const auto again = rekey_store(*raw_, *both);
  EXPECT_TRUE(again.complete);
  EXPECT_EQ(again.resealed, 0U);
  EXPECT_EQ(again.already_current, 20U);
  EXPECT_EQ(snapshot(), after_first);
}

TEST_P(Rekey, AnInterruptedRunIsFinishedByTheNext) {
  const auto old_ring = ring_of({{"2026a", 1}}, "2026a");
  accept_sealed(old_ring, 1, 5);
  const value_map plain_before = open_all(*old_ring);
  const auto both = ring_of({{"2026a", 1}, {"2026b", 2}}, "2026b");

  // Stopped (as by SIGINT) after two batches of two messages.
  int asked = 0;
  const auto first = rekey_store(
      *raw_, *both, {.batch_messages = 2, .interrupted = [&asked] { return ++asked > 2; }});
  EXPECT_FALSE(first.complete);
  EXPECT_FALSE(first.failed);
  EXPECT_EQ(first.batches, 2U);
  EXPECT_EQ(first.resealed, 16U);
  EXPECT_EQ(open_all(*both), plain_before);  // half old, half new: all readable meanwhile

  // A batch cut short in the middle (the rewriter fails after changing a value) leaves nothing of
  // itself behind.
  const value_map before_failure = snapshot();
  int seen = 0;
  std::promise<bool> failed;
  raw_->rewrite_values(
      "", 10,
      [&](const stored_value& v) -> std::optional<std::string> {
        if (++seen == 3) {
          throw std::runtime_error("cut short");
        }
        return seal(*both, "garbage", seal_context(v.message_id, "body"));
      },
      [&failed](rewrite_result, bool ok) { failed.set_value(ok); });
  EXPECT_FALSE(failed.get_future().get());
  EXPECT_EQ(snapshot(), before_failure);

  const auto second = rekey_store(*raw_, *both, {.batch_messages = 2});
  EXPECT_TRUE(second.complete);
  EXPECT_EQ(second.resealed, 4U);
  EXPECT_EQ(second.already_current, 16U);
  EXPECT_EQ(open_all(*ring_of({{"2026b", 2}}, "2026b")), plain_before);
}

TEST_P(Rekey, ARecordWhoseKeyIsMissingIsCountedAndLeftIntact) {
  accept_sealed(ring_of({{"lost", 9}}, "lost"), 1, 1);
  accept_sealed(ring_of({{"2026a", 1}}, "2026a"), 2, 3);
  const value_map before = snapshot();

  const auto ring = ring_of({{"2026a", 1}, {"2026b", 2}}, "2026b");  // "lost" is not configured
  const auto counts = rekey_store(*raw_, *ring);
  EXPECT_TRUE(counts.complete);
  EXPECT_EQ(counts.key_missing, 4U);  // message 1's body, facts and two payloads
  EXPECT_EQ(counts.resealed, 8U);
  EXPECT_EQ(counts.corrupt, 0U);
  const value_map after = snapshot();
  for (const char* place : {"body", "to:vn-thanhhoa", "to:la-houaphanh"}) {
    EXPECT_EQ(after.at({make_id(1), place}), before.at({make_id(1), place}))
        << "left exactly as it was: " << place;
  }
  // Once the key is configured again the record opens, and a later run re-seals it.
  const auto found = ring_of({{"lost", 9}, {"2026a", 1}, {"2026b", 2}}, "2026b");
  EXPECT_EQ(rekey_store(*raw_, *found).resealed, 4U);
  EXPECT_EQ(open_all(*ring_of({{"2026b", 2}}, "2026b")).size(), 12U);
}

TEST_P(Rekey, AMovedPayloadIsCountedAsUnreadableNotResealedInItsNewPlace) {
  const auto old_ring = ring_of({{"2026a", 1}}, "2026a");
  accept_sealed(old_ring, 1, 2);
  // Message 2's body carries message 1's: re-sealing it in its new place would launder it.
  value_map values = snapshot();
  const std::string moved = values.at({make_id(1), "body"});
  ASSERT_TRUE(overwrite_in_second_message(value_field::body, moved));

  const auto counts = rekey_store(*raw_, *ring_of({{"2026a", 1}, {"2026b", 2}}, "2026b"));
  EXPECT_EQ(counts.corrupt, 1U);
  EXPECT_EQ(counts.resealed, 7U);
  EXPECT_EQ(snapshot().at({make_id(2), "body"}), moved);
}

TEST_P(Rekey, RecordsFromBeforeEncryptionAreSealedToo) {
  for (int n = 1; n <= 2; ++n) {
    ASSERT_EQ(accept(*raw_, canary_record(n)).outcome, accept_outcome::stored);  // in clear
  }
  const auto ring = ring_of({{"2026b", 2}}, "2026b");
  const auto counts = rekey_store(*raw_, *ring);
  EXPECT_EQ(counts.sealed_from_clear, 8U);
  const value_map plain = open_all(*ring);
  EXPECT_EQ(plain.at({make_id(1), "to:la-houaphanh"}), "<m>CANARY-LA-1</m>");
  for (const auto& [place, bytes] : snapshot()) {
    EXPECT_TRUE(is_sealed(bytes)) << place.first << " " << place.second;
  }
}

TEST_P(Rekey, IsSafeWhileAGatewayKeepsAcceptingAndDelivering) {
  const auto old_ring = ring_of({{"2026a", 1}}, "2026a");
  accept_sealed(old_ring, 1, 20);
  // The gateway, restarted with the new key active, works on its own store instance while the
  // rekey runs on another (as `mxgw keys rekey` does from its own process).
  const auto both = ring_of({{"2026a", 1}, {"2026b", 2}}, "2026b");
  auto gateway_raw = std::shared_ptr<message_store>(GetParam().open(dir_.path(), {}));
  auto gateway = encrypt_at_rest(gateway_raw, both);
  std::atomic<bool> go{false};
  std::thread traffic([&] {
    while (!go) {
      std::this_thread::yield();
    }
    for (int n = 21; n <= 40; ++n) {
      EXPECT_EQ(accept(*gateway, canary_record(n)).outcome, accept_outcome::stored);
      std::promise<void> claimed;
      gateway->claim_due("gw", 3, std::chrono::minutes(1), {},
                         [&claimed](std::vector<delivery_job>, bool) { claimed.set_value(); });
      claimed.get_future().wait();
    }
  });
  go = true;
  const auto counts = rekey_store(*raw_, *both, {.batch_messages = 3});
  traffic.join();
  gateway->stop();
  EXPECT_TRUE(counts.complete);
  EXPECT_FALSE(counts.failed);
  EXPECT_EQ(counts.resealed, 80U);  // every old value, whatever the gateway did meanwhile
  const auto plain = open_all(*ring_of({{"2026b", 2}}, "2026b"));
  EXPECT_EQ(plain.size(), 160U);
  EXPECT_EQ(plain.at({make_id(40), "to:vn-thanhhoa"}), R"({"to":"CANARY-TH-40"})");
}

TEST_P(Rekey, ReceiptsAndErrorTextsAreSealedReadInClearAndResealed) {
  // Message 1 delivered and refused before encryption was turned on; message 2 after, under 2026a.
  ASSERT_EQ(accept(*raw_, canary_record(1)).outcome, accept_outcome::stored);
  answer_all(*raw_, 1);
  const auto old_ring = ring_of({{"2026a", 1}}, "2026a");
  auto sealed_old = encrypt_at_rest(raw_, old_ring);
  ASSERT_EQ(accept(*sealed_old, canary_record(2)).outcome, accept_outcome::stored);
  answer_all(*sealed_old, 2);

  const value_map stored = snapshot();
  EXPECT_EQ(stored.at({make_id(1), "receipt:vn-thanhhoa"}), receipt_of(1));  // from before
  EXPECT_EQ(stored.at({make_id(1), "error:la-houaphanh"}), refusal_of(1));
  for (const char* place : {"receipt:vn-thanhhoa", "error:la-houaphanh"}) {
    EXPECT_TRUE(is_sealed(stored.at({make_id(2), place}))) << place;
  }
  EXPECT_EQ(stored.count({make_id(2), "receipt:la-houaphanh"}), 0U);  // no receipt: nothing
  // The decorator shows both in clear, the old ones as they were stored.
  expect_texts_read(*sealed_old, 1);
  expect_texts_read(*sealed_old, 2);

  const auto both = ring_of({{"2026a", 1}, {"2026b", 2}}, "2026b");
  const auto counts = rekey_store(*raw_, *both);
  EXPECT_TRUE(counts.complete);
  EXPECT_EQ(counts.sealed_from_clear,
            6U);                   // message 1: body, facts, two payloads, receipt, refusal
  EXPECT_EQ(counts.resealed, 6U);  // message 2: the same six
  const auto new_only = ring_of({{"2026b", 2}}, "2026b");
  const value_map plain = open_all(*new_only);
  EXPECT_EQ(plain.size(), 12U);
  EXPECT_EQ(plain.at({make_id(1), "receipt:vn-thanhhoa"}), receipt_of(1));
  EXPECT_EQ(plain.at({make_id(2), "error:la-houaphanh"}), refusal_of(2));
  auto sealed_new = encrypt_at_rest(raw_, new_only);
  expect_texts_read(*sealed_new, 1);
  expect_texts_read(*sealed_new, 2);
}

TEST_P(Rekey, AReceiptThatDoesNotOpenReadsAsUnreadableNotAsItsBytes) {
  auto sealed = encrypt_at_rest(raw_, ring_of({{"2026a", 1}}, "2026a"));
  for (int n = 1; n <= 2; ++n) {
    ASSERT_EQ(accept(*sealed, canary_record(n)).outcome, accept_outcome::stored);
    answer_all(*sealed, n);
  }
  // Message 2's row carries message 1's receipt (moved by whoever can write the store).
  const std::string moved = snapshot().at({make_id(1), "receipt:vn-thanhhoa"});
  ASSERT_TRUE(overwrite_in_second_message(value_field::receipt, moved));
  const auto status = find(*sealed, make_id(2));
  ASSERT_TRUE(status);
  for (const auto& r : status->recipients) {
    if (r.recipient == "vn-thanhhoa") {
      EXPECT_EQ(r.receipt, unreadable_text("payload-corrupt"));
    }
  }
  // Without the key the texts are unreadable, and say why.
  auto keyless = encrypt_at_rest(raw_, ring_of({{"other", 3}}, "other"));
  const auto dead = list_dead(*keyless);
  ASSERT_EQ(dead.size(), 2U);
  for (const auto& letter : dead) {
    EXPECT_EQ(letter.last_error, unreadable_text("key-unavailable"));
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, Rekey, ::testing::ValuesIn(contract_backends()),
                         [](const auto& param_info) { return param_info.param.name; });

// The SQLite file itself: after a rekey of records stored in clear, no byte of the database or its
// companions holds a canary.
TEST(RekeySqliteFile, HoldsNoClearTextAfterwards) {
  test::temp_dir dir;
  sqlite_options options;
  options.path = dir / "store.db";
  {
    auto plain = open_sqlite_store(options);  // the gateway's own setting: no secure_delete
    for (int n = 1; n <= 3; ++n) {
      // Large enough for overflow pages (a photo, a long narrative): their old content would stay
      // on the freelist.
      message_record record = canary_record(n);
      record.body = "CANARY-START" + std::string(20'000, 'x') + "CANARY-END";
      record.deliveries[0].payload = record.body;
      std::promise<accept_result> p;
      plain->accept(std::move(record), [&p](accept_result r) { p.set_value(r); });
      ASSERT_EQ(p.get_future().get().outcome, accept_outcome::stored);
    }
  }
  ASSERT_NE(test::read_file(dir / "store.db").find("CANARY"), std::string::npos)
      << "the test must start from clear text";
  {
    // As `mxgw keys rekey` opens it: without secure_delete the replaced bytes would stay in the
    // pages' free space (and the freelist), readable by anyone with the file.
    options.secure_delete = true;
    auto store = open_sqlite_store(options);
    EXPECT_EQ(rekey_store(*store, *ring_of({{"k", 3}}, "k")).sealed_from_clear, 12U);
    store->stop();
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(test::read_file(entry.path()).find("CANARY"), std::string::npos) << entry.path();
  }
}

}  // namespace
}  // namespace mxgw::store
