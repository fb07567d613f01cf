// Encryption at rest: AES-256-GCM sealing, the key ring (files, environment, rotation), and the
// store decorator (bodies and payloads never reach the database file in clear text).
#include "gateway/store/sealed.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <set>
#include <string>
#include <tuple>

#include "gateway/store/sqlite_store.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::store {
namespace {

using namespace mxgw::store::test_helpers;

data_key key_of(const std::string& id, unsigned char fill) {
  data_key key;
  key.id = id;
  key.bytes.fill(fill);
  return key;
}

key_ring ring_with(std::initializer_list<std::pair<const char*, unsigned char>> keys,
                   const std::string& active) {
  key_ring ring;
  for (const auto& [id, fill] : keys) {
    ring.add(key_of(id, fill));
  }
  ring.set_active(active);
  return ring;
}

TEST(Sealing, RoundTripsAndHidesThePlainText) {
  const key_ring ring = ring_with({{"k1", 1}}, "k1");
  const std::string plain = R"({"name":"CANARY-NAME-7731"})";
  const std::string sealed = seal(ring, plain, seal_context("id-1", "body"));
  EXPECT_TRUE(is_sealed(sealed));
  EXPECT_EQ(sealed.find("CANARY"), std::string::npos);
  EXPECT_EQ(open_sealed(ring, sealed, seal_context("id-1", "body")), plain);
  // A fresh nonce each time: the same plain text never seals to the same bytes.
  EXPECT_NE(seal(ring, plain, seal_context("id-1", "body")), sealed);
  EXPECT_EQ(open_sealed(ring, seal(ring, "", seal_context("id-1", "body")),
                        seal_context("id-1", "body")),
            "");
}

/// The 12 nonce bytes of a record sealed under key id "k1" (magic, id length, id, nonce).
std::string nonce_of(const std::string& sealed) {
  return sealed.substr(4 + 1 + 2, 12);
}

TEST(Sealing, NoncesNeverRepeatAcrossBlocksThreadsOrAFork) {
  const key_ring ring = ring_with({{"k1", 1}}, "k1");
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {  // several of the blocks nonces are drawn in
    EXPECT_TRUE(seen.insert(nonce_of(seal(ring, "x", "c"))).second) << "nonce " << i;
  }
  std::string other_thread = std::async(std::launch::async, [&] {
                               return nonce_of(seal(ring, "x", "c"));
                             }).get();
  EXPECT_TRUE(seen.insert(other_thread).second);

  // The parent has most of a block left; a child must not seal with the same bytes.
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string nonce = nonce_of(seal(ring, "x", "c"));
    const bool written = write(pipe_fds[1], nonce.data(), nonce.size()) ==
                         static_cast<ssize_t>(nonce.size());
    _exit(written ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::string from_child(12, '\0');
  const ssize_t got = read(pipe_fds[0], from_child.data(), from_child.size());
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_EQ(got, 12);
  const std::string parent_next = nonce_of(seal(ring, "x", "c"));
  EXPECT_NE(from_child, parent_next) << "the child reused the parent's next nonce";
  EXPECT_TRUE(seen.insert(from_child).second);
  EXPECT_TRUE(seen.insert(parent_next).second);
}

TEST(Sealing, AnotherPlaceOrAnyAlteredByteDoesNotOpen) {
  const key_ring ring = ring_with({{"k1", 1}}, "k1");
  const std::string sealed = seal(ring, "payload for Thanh Hoa", seal_context("id-1", "to:vn-th"));
  std::string why;
  EXPECT_FALSE(open_sealed(ring, sealed, seal_context("id-2", "to:vn-th"), &why));
  EXPECT_EQ(why, "payload-corrupt");
  EXPECT_FALSE(open_sealed(ring, sealed, seal_context("id-1", "to:kh-rt")));
  for (std::size_t i = 4 + 1 + 2; i < sealed.size(); i += 3) {
    std::string altered = sealed;
    altered[i] = static_cast<char>(altered[i] ^ 0x01);
    EXPECT_FALSE(open_sealed(ring, altered, seal_context("id-1", "to:vn-th"))) << "byte " << i;
  }
  EXPECT_FALSE(open_sealed(ring, sealed.substr(0, 20), seal_context("id-1", "to:vn-th"), &why));
  EXPECT_EQ(why, "payload-corrupt");
  EXPECT_FALSE(open_sealed(ring, "{\"plain\":1}", seal_context("id-1", "to:vn-th"), &why));
  EXPECT_EQ(why, "not-sealed");
}

TEST(Sealing, RotationKeepsOldRecordsReadable) {
  const key_ring before = ring_with({{"2026a", 1}}, "2026a");
  const std::string old_record = seal(before, "old", seal_context("m", "body"));
  const key_ring after = ring_with({{"2026a", 1}, {"2026b", 2}}, "2026b");
  const std::string new_record = seal(after, "new", seal_context("m", "body"));
  EXPECT_EQ(open_sealed(after, old_record, seal_context("m", "body")), "old");
  EXPECT_EQ(open_sealed(after, new_record, seal_context("m", "body")), "new");
  // The new record names the new key: a ring without it cannot read it (and says why).
  std::string why;
  EXPECT_FALSE(open_sealed(before, new_record, seal_context("m", "body"), &why));
  EXPECT_EQ(why, "key-unavailable");
}

TEST(KeyRing, LoadsFilesAndEnvironmentAndRefusesBadKeys) {
  test::temp_dir dir;
  generate_key_file(dir / "k1.hex");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "k1.hex").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_THROW(generate_key_file(dir / "k1.hex"), key_error);  // never overwritten

  ::setenv("MXGW_TEST_STORE_KEY", std::string(64, 'B').c_str(), 1);
  const key_ring ring =
      key_ring::load({{"k1", dir / "k1.hex", ""}, {"k2", "", "MXGW_TEST_STORE_KEY"}}, "k2");
  EXPECT_EQ(ring.active().id, "k2");
  EXPECT_EQ(ring.active().bytes[0], 0xBB);
  EXPECT_NE(ring.find("k1"), nullptr);

  const auto error_of = [](const std::vector<key_source>& sources, const std::string& active) {
    try {
      key_ring::load(sources, active);
    } catch (const key_error& e) {
      return std::string(e.what());
    }
    return std::string("(loaded)");
  };
  test::write_file(dir / "open.hex", std::string(64, 'a'));
  ::chmod((dir / "open.hex").c_str(), 0644);
  EXPECT_NE(error_of({{"k", dir / "open.hex", ""}}, "k").find("readable by others"),
            std::string::npos);
  test::write_file(dir / "short.hex", std::string(63, 'a'));
  ::chmod((dir / "short.hex").c_str(), 0600);
  const std::string short_error = error_of({{"k", dir / "short.hex", ""}}, "k");
  EXPECT_NE(short_error.find("64 hexadecimal digits"), std::string::npos);
  EXPECT_EQ(short_error.find("aaaa"), std::string::npos);  // the key never appears in errors
  EXPECT_NE(error_of({{"k", "", "MXGW_TEST_UNSET_KEY"}}, "k").find("not set"), std::string::npos);
  EXPECT_NE(error_of({{"k1", dir / "k1.hex", ""}}, "k2").find("not among the keys"),
            std::string::npos);
  EXPECT_NE(error_of({{"bad id", dir / "k1.hex", ""}}, "bad id").find("must be"),
            std::string::npos);
  ::unsetenv("MXGW_TEST_STORE_KEY");
}

/// The decorator over a real SQLite store.
class SealedStore : public ::testing::Test {
 protected:
  void SetUp() override {
    ring_ = std::make_shared<key_ring>(ring_with({{"k1", 7}}, "k1"));
    open();
  }
  void open() {
    sqlite_options options;
    options.path = dir_ / "store.db";
    store_ = encrypt_at_rest(open_sqlite_store(options), ring_);
  }
  accept_result accept(message_record record) {
    std::promise<accept_result> p;
    auto f = p.get_future();
    store_->accept(std::move(record), [&p](accept_result r) { p.set_value(std::move(r)); });
    return f.get();
  }
  /// Stops the sealed store and stores `record` through a store without encryption (as before
  /// encryption was turned on); returns that store.
  std::shared_ptr<message_store> accept_in_clear(message_record record) {
    store_->stop();
    sqlite_options options;
    options.path = dir_ / "store.db";
    std::shared_ptr<message_store> plain = open_sqlite_store(options);
    std::promise<accept_result> p;
    plain->accept(std::move(record), [&p](accept_result r) { p.set_value(r); });
    EXPECT_EQ(p.get_future().get().outcome, accept_outcome::stored);
    return plain;
  }
  std::vector<delivery_job> claim() {
    std::promise<std::vector<delivery_job>> p;
    auto f = p.get_future();
    store_->claim_due("w", 10, std::chrono::minutes(1), {},
                      [&p](std::vector<delivery_job> jobs, bool) { p.set_value(std::move(jobs)); });
    return f.get();
  }

  test::temp_dir dir_;
  std::shared_ptr<key_ring> ring_;
  std::shared_ptr<message_store> store_;
};

message_record canary_record(const std::string& id) {
  const std::string body = R"({"names":[{"family":["CANARY-FAMILY-1"]}]})";
  message_record r{id, "kh-ratanakiri", "victim.identification", "2026-11-22T04:38:47Z",
                   fingerprint(body), body};
  r.deliveries.push_back({"vn-thanhhoa", "explicit", R"({"to":"CANARY-PAYLOAD-TH"})", "[]"});
  r.deliveries.push_back({"la-houaphanh", "rule-1", "<m>CANARY-PAYLOAD-LA</m>", "[]"});
  return r;
}

/// `r` with one more recipient, interpol, that gets the body as stored.
message_record with_body_recipient(message_record r) {
  r.deliveries.push_back(
      {.recipient = "interpol", .decided_by = "rule-2", .payload_is_body = true});
  return r;
}

TEST_F(SealedStore, TheFileHoldsNoClearTextAndWorkersGetThePayload) {
  ASSERT_EQ(accept(canary_record(make_id(1))).outcome, accept_outcome::stored);
  auto jobs = claim();
  ASSERT_EQ(jobs.size(), 2U);
  std::map<std::string, std::string> payloads;
  for (const auto& job : jobs) {
    payloads[job.recipient] = job.payload;
  }
  EXPECT_EQ(payloads["vn-thanhhoa"], R"({"to":"CANARY-PAYLOAD-TH"})");
  EXPECT_EQ(payloads["la-houaphanh"], "<m>CANARY-PAYLOAD-LA</m>");
  store_->stop();
  // Every byte of the database (and of a WAL, if one were left) is free of the canaries.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    const std::string bytes = test::read_file(entry.path());
    EXPECT_EQ(bytes.find("CANARY"), std::string::npos) << entry.path();
  }
  raw_db db(dir_ / "store.db");
  EXPECT_EQ(db.text("SELECT substr(body, 1, 4) FROM messages"), "MXE1");
}

TEST_F(SealedStore, AnIdenticalResendIsStillADuplicate) {
  ASSERT_EQ(accept(canary_record(make_id(2))).outcome, accept_outcome::stored);
  // Sealing is randomised, but the duplicate check uses the plain text's SHA-256.
  EXPECT_EQ(accept(canary_record(make_id(2))).outcome, accept_outcome::duplicate);
}

TEST_F(SealedStore, APayloadMovedToAnotherRowIsNotDelivered) {
  ASSERT_EQ(accept(canary_record(make_id(3))).outcome, accept_outcome::stored);
  {
    raw_db db(dir_ / "store.db");
    // An attacker with the file swaps the two recipients' payloads.
    db.exec(
        "UPDATE deliveries SET payload = (SELECT payload FROM deliveries WHERE recipient = "
        "'la-houaphanh') WHERE recipient = 'vn-thanhhoa'");
  }
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 1U);  // only the untouched row goes out
  EXPECT_EQ(jobs[0].recipient, "la-houaphanh");
  store_->stop();
  raw_db db(dir_ / "store.db");
  EXPECT_EQ(db.text("SELECT state || ' ' || last_error FROM deliveries WHERE recipient = "
                    "'vn-thanhhoa'"),
            "retrying payload-corrupt");
}

TEST_F(SealedStore, RecordsFromBeforeEncryptionStillDeliver) {
  accept_in_clear(with_body_recipient(canary_record(make_id(4))));
  open();
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 3U);
  for (const auto& job : jobs) {
    if (job.recipient == "interpol") {
      EXPECT_EQ(job.payload, canary_record(make_id(4)).body);  // in clear, and no grant: as stored
    }
  }
}

TEST_F(SealedStore, TheBodysRecipientIsHandedTheBodyAndItsRowHoldsOnlyASealedGrant) {
  const message_record record = with_body_recipient(canary_record(make_id(5)));
  ASSERT_EQ(accept(record).outcome, accept_outcome::stored);
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 3U);
  std::map<std::string, delivery_job> by_recipient;
  for (const auto& job : jobs) {
    by_recipient[job.recipient] = job;
  }
  EXPECT_EQ(by_recipient["interpol"].payload, record.body);
  EXPECT_EQ(by_recipient["vn-thanhhoa"].payload, R"({"to":"CANARY-PAYLOAD-TH"})");
  store_->stop();
  raw_db db(dir_ / "store.db");
  // A sealed empty value: header, nonce and tag, no copy of the body.
  EXPECT_EQ(db.text("SELECT substr(payload, 1, 4) || ' ' || (length(payload) < 64) FROM "
                    "deliveries WHERE recipient = 'interpol'"),
            "MXE1 1");
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(test::read_file(entry.path()).find("CANARY"), std::string::npos) << entry.path();
  }
}

TEST_F(SealedStore, MarkingARowAsTheBodysRecipientDoesNotHandItTheBody) {
  // Whoever can write the file marks the rows of recipients that get a copy of their own (with
  // fields withheld, say) as recipients of the whole body: keeping the row's sealed copy as its
  // "grant", emptying it, or moving the real grant of another recipient there.
  ASSERT_EQ(accept(canary_record(make_id(6))).outcome, accept_outcome::stored);
  ASSERT_EQ(accept(canary_record(make_id(7))).outcome, accept_outcome::stored);
  ASSERT_EQ(accept(with_body_recipient(canary_record(make_id(8)))).outcome, accept_outcome::stored);
  {
    raw_db db(dir_ / "store.db");
    db.exec("UPDATE deliveries SET payload_is_body = 1 WHERE message_id = '" + make_id(6) +
            "' AND recipient = 'vn-thanhhoa'");
    db.exec("UPDATE deliveries SET payload_is_body = 1, payload = x'' WHERE message_id = '" +
            make_id(7) + "' AND recipient = 'vn-thanhhoa'");
    db.exec(
        "UPDATE deliveries SET payload_is_body = 1, payload = (SELECT payload FROM deliveries "
        "WHERE recipient = 'interpol') WHERE message_id = '" +
        make_id(8) + "' AND recipient = 'vn-thanhhoa'");
  }
  const auto jobs = claim();
  for (const auto& job : jobs) {
    EXPECT_NE(job.recipient, "vn-thanhhoa") << job.message_id;
  }
  EXPECT_EQ(jobs.size(), 4U);  // la-houaphanh three times, interpol once
  store_->stop();
  raw_db db(dir_ / "store.db");
  EXPECT_EQ(db.text("SELECT group_concat(state || ' ' || last_error, ', ') FROM deliveries "
                    "WHERE recipient = 'vn-thanhhoa'"),
            "retrying payload-corrupt, retrying payload-corrupt, retrying payload-corrupt");
}

TEST_F(SealedStore, ReceiptsAndRefusalsNeverReachTheFileInClear) {
  ASSERT_EQ(accept(canary_record(make_id(10))).outcome, accept_outcome::stored);
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 2U);
  // A receipt longer than a row keeps (cut before sealing, so what is kept still opens), and a
  // refusal quoting the message.
  const std::string receipt = R"({"receipt":"CANARY-RECEIPT")" + std::string(6000, ' ') + "}";
  const std::string refusal = "http-422: CANARY-REFUSAL is not a known family name";
  for (const auto& job : jobs) {
    attempt_report report{job.message_id, job.recipient, "w"};
    report.attempt = job.attempt;
    if (job.recipient == "vn-thanhhoa") {
      report.result = attempt_result::delivered;
      report.receipt = receipt;
    } else {
      report.result = attempt_result::dead;
      report.error = refusal;
    }
    std::promise<bool> done;
    store_->report(std::move(report), [&done](bool ok) { done.set_value(ok); });
    ASSERT_TRUE(done.get_future().get());
  }
  std::promise<std::optional<message_status>> found;
  store_->find(make_id(10),
               [&found](std::optional<message_status> s, bool) { found.set_value(std::move(s)); });
  const auto status = found.get_future().get();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->recipients.size(), 2U);
  for (const auto& r : status->recipients) {
    if (r.recipient == "vn-thanhhoa") {
      EXPECT_EQ(r.receipt, receipt.substr(0, max_receipt_bytes));
    } else {
      EXPECT_EQ(r.last_error, refusal);
    }
  }
  std::promise<bool> discarded;
  store_->discard(make_id(10), "la-houaphanh", "wrong-recipient", {},
                  [&discarded](bool found_it, bool ok) { discarded.set_value(found_it && ok); });
  ASSERT_TRUE(discarded.get_future().get());
  store_->stop();
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    const std::string bytes = test::read_file(entry.path());
    EXPECT_EQ(bytes.find("CANARY"), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find("wrong-recipient"), std::string::npos) << entry.path();
  }
  raw_db db(dir_ / "store.db");
  EXPECT_EQ(db.text("SELECT group_concat(substr(receipt, 1, 4) || substr(last_error, 1, 4), ' ') "
                    "FROM (SELECT * FROM deliveries ORDER BY recipient)"),
            "MXE1 MXE1");
}

// The statistics' facts are sealed for their message like the body: the file never holds them
// in clear, the report reads them opened, and facts moved to another message do not open.
TEST_F(SealedStore, FactsAreSealedForTheirMessageAndReadOpened) {
  const std::string facts = R"({"sex":"F","region":"CANARY-REGION"})";
  for (int n : {20, 21}) {
    message_record r = canary_record(make_id(n));
    r.facts = facts;
    ASSERT_EQ(accept(std::move(r)).outcome, accept_outcome::stored);
  }
  const auto read_all = [this] {
    std::promise<facts_page> p;
    store_->read_facts("2000-01-01", "", 10, [&p](facts_page page, bool ok) {
      EXPECT_TRUE(ok);
      p.set_value(std::move(page));
    });
    return p.get_future().get();
  };
  const auto page = read_all();
  ASSERT_EQ(page.rows.size(), 2U);
  EXPECT_EQ(page.rows[0].facts, facts);
  store_->stop();
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    const std::string bytes = test::read_file(entry.path());
    EXPECT_EQ(bytes.find("CANARY"), std::string::npos) << entry.path();
  }
  {
    raw_db db(dir_ / "store.db");
    EXPECT_EQ(db.text("SELECT group_concat(substr(facts, 1, 4), ' ') FROM messages"), "MXE1 MXE1");
    // Someone with the file copies the first message's facts onto the second.
    db.exec("UPDATE messages SET facts = (SELECT facts FROM messages WHERE id = '" + make_id(20) +
            "') WHERE id = '" + make_id(21) + "'");
  }
  open();
  const auto moved = read_all();
  ASSERT_EQ(moved.rows.size(), 2U);
  EXPECT_EQ(moved.rows[0].facts, facts);
  EXPECT_NE(moved.rows[1].facts, facts);
  EXPECT_NE(moved.rows[1].facts.substr(0, 1),
            "{");  // not JSON: the report counts it as without facts
}

TEST_F(SealedStore, ABodyIsReadOpenedAndOneThatDoesNotOpenIsNotRead) {
  const auto read = [this](const std::string& id) {
    std::promise<std::pair<std::optional<stored_body>, bool>> p;
    store_->read_body(id, [&p](std::optional<stored_body> body, bool ok) {
      p.set_value({std::move(body), ok});
    });
    return p.get_future().get();
  };
  for (int n : {30, 31}) {
    ASSERT_EQ(accept(canary_record(make_id(n))).outcome, accept_outcome::stored);
  }
  auto [body, ok] = read(make_id(30));
  ASSERT_TRUE(ok);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->sender, "kh-ratanakiri");
  EXPECT_EQ(body->body, R"({"names":[{"family":["CANARY-FAMILY-1"]}]})");
  store_->stop();
  {
    // Someone with the file copies one message's body onto another: it does not open there.
    raw_db db(dir_ / "store.db");
    db.exec("UPDATE messages SET body = (SELECT body FROM messages WHERE id = '" + make_id(30) +
            "') WHERE id = '" + make_id(31) + "'");
  }
  open();
  std::tie(body, ok) = read(make_id(31));
  EXPECT_TRUE(ok);
  EXPECT_FALSE(body.has_value());
}

TEST_F(SealedStore, RekeyGivesTheBodysRecipientsOfClearRecordsTheirGrants) {
  {
    auto plain = accept_in_clear(with_body_recipient(canary_record(make_id(9))));
    const rekey_counts counts = rekey_store(*plain, *ring_);
    EXPECT_TRUE(counts.complete);
    EXPECT_EQ(counts.sealed_from_clear, 4U);  // the body, two copies and the grant
  }
  open();
  const auto jobs = claim();
  ASSERT_EQ(jobs.size(), 3U);
  for (const auto& job : jobs) {
    if (job.recipient == "interpol") {
      EXPECT_EQ(job.payload, canary_record(make_id(9)).body);
    }
  }
}

// A copy whose payload does not open (its key is missing from the ring) is given back to wait for
// the key, untried: each wait leaves its attempts as they were, so the copy has every one of its
// tries when the key is configured again, and a held copy that waits reached no one.
TEST(SealedStoreKeyWait, ACopyWaitingForItsKeyKeepsItsTries) {
  test::temp_dir dir;
  std::atomic<std::int64_t> shift_ms{0};
  sqlite_options options;
  options.path = dir / "store.db";
  options.clock = [&shift_ms] {
    return std::chrono::system_clock::now() + std::chrono::milliseconds(shift_ms.load());
  };
  std::shared_ptr<message_store> inner = open_sqlite_store(options);
  auto with_key = encrypt_at_rest(inner, std::make_shared<key_ring>(ring_with({{"k1", 1}}, "k1")));
  auto without_key =
      encrypt_at_rest(inner, std::make_shared<key_ring>(ring_with({{"k2", 2}}, "k2")));
  std::promise<accept_result> accepted;
  with_key->accept(canary_record(make_id(40)),
                   [&](accept_result r) { accepted.set_value(std::move(r)); });
  ASSERT_EQ(accepted.get_future().get().outcome, accept_outcome::stored);

  const auto claim = [](message_store& store) {
    std::promise<std::vector<delivery_job>> p;
    store.claim_due("w", 10, std::chrono::minutes(1), {},
                    [&p](std::vector<delivery_job> jobs, bool) { p.set_value(std::move(jobs)); });
    return p.get_future().get();
  };
  for (int wait = 0; wait < 3; ++wait) {
    EXPECT_TRUE(claim(*without_key).empty());
    // The give-back is committed before a write queued after it answers.
    std::promise<bool> flushed;
    inner->append_audit({}, [&](bool ok) { flushed.set_value(ok); });
    ASSERT_TRUE(flushed.get_future().get());
    shift_ms += 6 * 60 * 1000;  // past the five minutes the copy waits
  }
  const auto jobs = claim(*with_key);  // the key is configured again
  ASSERT_EQ(jobs.size(), 2U);
  for (const auto& job : jobs) {
    EXPECT_EQ(job.attempt, 1) << job.recipient << ": the waits used up tries never made";
  }
  inner->stop();
}

}  // namespace
}  // namespace mxgw::store
