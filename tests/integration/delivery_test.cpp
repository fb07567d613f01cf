// Store-and-forward end to end: a real gateway delivers over mutual TLS to stand-in partners
// (partner-sim) that answer receipts, fail, go down and come back.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>
#include <sys/wait.h>

#include <atomic>
#include <future>
#include <regex>
#include <thread>
#include <tuple>

#include "gateway/delivery/delivery_service.hpp"
#include "gateway/identity/peer_identity.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/store/store_test_helpers.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(20);

// Strict about the encoding: an answer that is not UTF-8 is not JSON (RFC 8259) and fails here.
rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str());
  return doc;
}

class Delivery : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    for (auto* sim : {&ratanakiri_, &stungtreng_}) {
      sim::partner_sim_options options = sim_options();
      options.keep_bodies = true;
      *sim = std::make_unique<sim::partner_sim>(options);
      (*sim)->start();
    }
    const std::string delivery = R"("delivery": {"timeout_ms": 2000, "max_attempts": 5,
        "max_age_s": 3600, "backoff_base_ms": 20, "backoff_cap_ms": 100, "concurrency": 4})";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "agreements":["victim-data"],
       "endpoint":"https://127.0.0.1:)" + std::to_string(ratanakiri_->port()) +
                                           R"(/v1/messages",)" + delivery + R"(},
      {"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH",
       "endpoint":"https://127.0.0.1:)" + std::to_string(stungtreng_->port()) +
                                           R"(/v1/messages",)" + delivery + R"(}]})");
    c.delivery.poll_interval_ms = 20;
    c.delivery.breaker_failures = 3;
    c.delivery.breaker_open_ms = breaker_open_ms();
  }

  // Short by default, so a partner that comes back is tried again soon.
  virtual std::uint32_t breaker_open_ms() const { return 200; }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
    stungtreng_.reset();
  }

  // The status of message `id` as its sender sees it.
  rapidjson::Document status(const std::string& id) {
    return parse(get(gialai_, "/v1/messages/" + id).body);
  }

  // The state of one recipient's delivery in a status document.
  static std::string state_of(const rapidjson::Document& s, const std::string& partner) {
    if (!s.IsObject() || !s.HasMember("recipients")) {
      return {};
    }
    for (const auto& r : s["recipients"].GetArray()) {
      if (r["partner"].GetString() == partner) {
        return r["state"].GetString();
      }
    }
    return {};
  }

  // Polls the status endpoint (a real HTTPS request each time) until `done` holds; bounded.
  rapidjson::Document status_when(const std::string& id,
                                  const std::function<bool(const rapidjson::Document&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      auto s = status(id);
      if (done(s) || std::chrono::steady_clock::now() > deadline) {
        return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string submit_victim(const std::string& id) {
    auto r = post(gialai_, example("victim.identification", id));
    EXPECT_EQ(r.status, 202) << r.body << r.error;
    return id;
  }

  // A store of the test's own (beside the fixture's gateway), its clock `shift` away from now.
  std::shared_ptr<store::message_store> own_store(
      const std::atomic<std::int64_t>* shift_ms = nullptr) {
    store::sqlite_options so;
    so.path = dir_ / "own" / "store.db";
    if (shift_ms != nullptr) {
      so.clock = [shift_ms] {
        return std::chrono::system_clock::now() + std::chrono::milliseconds(shift_ms->load());
      };
    }
    return store::open_sqlite_store(so);
  }

  // Stores message `n` (a body whose id the stand-in records) with one copy for Stung Treng.
  static void accept_for_stungtreng(store::message_store& store, int n) {
    namespace th = store::test_helpers;
    const std::string body = R"({"id":")" + th::make_id(n) + R"("})";
    store::message_record record{th::make_id(n),          "vn-gialai",
                                 "victim.identification", "2026-11-22T04:38:47Z",
                                 th::fingerprint(body),   body};
    record.deliveries.push_back({"kh-stungtreng", "explicit", body, "[]"});
    std::promise<store::accept_outcome> accepted;
    store.accept(std::move(record), [&](store::accept_result r) { accepted.set_value(r.outcome); });
    ASSERT_EQ(accepted.get_future().get(), store::accept_outcome::stored);
  }

  // Workers of the test's own over `store`, delivering to Stung Treng's stand-in with `limits`.
  std::unique_ptr<delivery::delivery_service> own_workers(
      std::shared_ptr<store::message_store> store, const delivery::retry_limits& limits) {
    delivery::delivery_options options;
    options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}};
    options.owner = "own";
    options.recipients = {"kh-stungtreng"};
    options.poll_interval = std::chrono::milliseconds(20);
    const std::string endpoint =
        "https://127.0.0.1:" + std::to_string(stungtreng_->port()) + "/v1/messages";
    auto workers = std::make_unique<delivery::delivery_service>(
        options, std::move(store),
        [endpoint, limits](std::string_view) -> std::optional<delivery::recipient_info> {
          delivery::recipient_info info;
          info.endpoint = endpoint;
          info.limits = limits;
          return info;
        });
    workers->start();
    return workers;
  }

  // The copy of message `id` once it is delivered or dead (its last state after `patience`).
  static store::recipient_status settled(store::message_store& store, const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      std::promise<std::optional<store::message_status>> found;
      store.find(
          id, [&](std::optional<store::message_status> s, bool) { found.set_value(std::move(s)); });
      const auto status = found.get_future().get();
      const bool late = std::chrono::steady_clock::now() > deadline;
      if (status && status->recipients.size() == 1) {
        const auto& row = status->recipients[0];
        if (row.state == "delivered" || row.state == "dead" || late) {
          return row;
        }
      } else if (late) {
        ADD_FAILURE() << "no copy of " << id;
        return {};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Quick retries, so a test sees every attempt at once.
  static delivery::retry_limits quick_retries(int max_attempts) {
    delivery::retry_limits limits;
    limits.max_attempts = max_attempts;
    limits.max_age = std::chrono::hours(1);
    limits.backoff_base = std::chrono::milliseconds(1);
    limits.backoff_cap = std::chrono::milliseconds(5);
    return limits;
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_, stungtreng_;
  cli::client_tls gialai_;

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
  }
};

TEST_F(Delivery, EachRecipientGetsItOnceWithVictimFieldsWithheldWhereThereIsNoAgreement) {
  const auto id = submit_victim("6a1f0c2e-9b8d-4c7a-8e5f-1d2c3b4a5f60");
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_TRUE(ratanakiri_->has(id));
  EXPECT_TRUE(stungtreng_->has(id));

  auto s = status_when(id, [](const auto& d) {
    return state_of(d, "kh-ratanakiri") == "delivered" &&
           state_of(d, "kh-stungtreng") == "delivered";
  });
  ASSERT_EQ(state_of(s, "kh-ratanakiri"), "delivered");
  ASSERT_EQ(state_of(s, "kh-stungtreng"), "delivered");
  for (const auto& r : s["recipients"].GetArray()) {
    EXPECT_TRUE(r.HasMember("deliveredAt"));
    EXPECT_EQ(r["attempts"].GetInt(), 1);
    EXPECT_EQ(std::string(r["decidedBy"].GetString()), "explicit");
    // Stung Treng has no victim-data agreement: the document number and narrative were withheld
    // from its copy, and the status says so. Ratanakiri got everything.
    if (std::string(r["partner"].GetString()) == "kh-stungtreng") {
      ASSERT_TRUE(r.HasMember("withheld"));
      std::vector<std::string> pointers;
      for (const auto& w : r["withheld"].GetArray()) {
        pointers.emplace_back(w["pointer"].GetString());
        EXPECT_EQ(std::string(w["reason"].GetString()), "no-victim-data-agreement");
      }
      EXPECT_NE(std::find(pointers.begin(), pointers.end(), "/body/person/documents/0/number"),
                pointers.end());
      EXPECT_NE(std::find(pointers.begin(), pointers.end(), "/body/narrative"), pointers.end());
    } else {
      EXPECT_FALSE(r.HasMember("withheld"));
    }
  }
  // A recipient sees its own row only, and not the routing of others.
  auto own = parse(get(partner_client("kh-stungtreng"), "/v1/messages/" + id).body);
  ASSERT_TRUE(own.IsObject());
  ASSERT_EQ(own["recipients"].Size(), 1u);
  EXPECT_EQ(std::string(own["recipients"][0]["partner"].GetString()), "kh-stungtreng");
  EXPECT_FALSE(own.HasMember("excluded"));
}

TEST_F(Delivery, ARecipientOfEverythingGetsTheSubmittedBytesAndOneWithFieldsWithheldItsCopy) {
  const std::string id = "7b2e1d3f-0c9a-4b8e-9f6d-2e3d4c5b6a71";
  const std::string submitted = example("victim.identification", id);
  ASSERT_EQ(post(gialai_, submitted).status, 202);
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  // Ratanakiri reads mx/1 and nothing is withheld from it: the message exactly as accepted (the
  // store kept no second copy of it), not a re-serialisation.
  EXPECT_EQ(ratanakiri_->received(id), submitted);
  // Stung Treng has no victim-data agreement: a copy of its own, the narrative taken out.
  const auto copy = stungtreng_->received(id);
  ASSERT_TRUE(copy.has_value());
  EXPECT_NE(*copy, submitted);
  const auto doc = parse(*copy);
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("withheld") && doc.HasMember("body"));
  EXPECT_FALSE(doc["body"].HasMember("narrative"));
  EXPECT_NE(submitted.find("\"narrative\""), std::string::npos);
}

// A stop() while a claim waits in the store's queue: the claim commits after the workers were told
// to stop. Its deliveries must not be stranded under this instance's lease (two minutes, so the
// next instance would not deliver them either): they are delivered or given back at once.
TEST_F(Delivery, AStopWhileAClaimWaitsInTheStoreStrandsNothing) {
  namespace th = store::test_helpers;
  // A store and workers of the test's own, beside the fixture's gateway, with the real partner.
  const auto path = dir_ / "own" / "store.db";
  store::sqlite_options so;
  so.path = path;
  so.busy_timeout_ms = 60000;  // the gate holds the write lock while the claim waits
  auto store = std::make_shared<store::sqlite_store>(so);
  const std::string body = R"({"case":"stop"})";
  store::message_record record{th::make_id(7), "vn-gialai", "victim.identification",
                               "2026-11-22T04:38:47Z", th::fingerprint(body), body};
  record.deliveries.push_back({"kh-stungtreng", "explicit", body, "[]"});
  std::promise<store::accept_result> accepted;
  store->accept(std::move(record), [&](store::accept_result r) { accepted.set_value(r); });
  ASSERT_EQ(accepted.get_future().get().outcome, store::accept_outcome::stored);

  // Hold the write lock; a first write takes the writer into the wait, so the next (the claim)
  // stays in the queue where stats() sees it.
  th::writer_gate gate(path);
  std::promise<bool> first;
  store->append_audit({}, [&](bool ok) { first.set_value(ok); });
  th::wait_until_writer_took_all(*store);

  delivery::delivery_options options;
  options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}};
  options.owner = "first";
  options.recipients = {"kh-stungtreng"};
  const std::string endpoint =
      "https://127.0.0.1:" + std::to_string(stungtreng_->port()) + "/v1/messages";
  auto workers = std::make_unique<delivery::delivery_service>(
      options, store, [&](std::string_view) -> std::optional<delivery::recipient_info> {
        delivery::recipient_info info;
        info.endpoint = endpoint;
        return info;
      });
  workers->start();
  const auto deadline = std::chrono::steady_clock::now() + th::wait_limit;
  while (store->stats().queued == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the workers never claimed";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto stopped = std::async(std::launch::async, [&workers] { workers->stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // stop() is under way
  gate.release();
  ASSERT_EQ(stopped.wait_for(th::wait_limit), std::future_status::ready);
  stopped.get();
  EXPECT_TRUE(first.get_future().get());

  // Either delivered before the stop took hold, or free for the next instance now.
  std::promise<std::vector<store::delivery_job>> claimed;
  store->claim_due("next", 10, std::chrono::minutes(1), {{"kh-stungtreng", 4}},
                   [&](std::vector<store::delivery_job> jobs, bool) {
                     claimed.set_value(std::move(jobs));
                   });
  const auto jobs = claimed.get_future().get();
  const bool delivered = stungtreng_->has(th::make_id(7));
  EXPECT_TRUE(delivered || jobs.size() == 1)
      << "the delivery is stranded under the stopped instance's lease";
  EXPECT_FALSE(delivered && !jobs.empty());
  if (!jobs.empty()) {
    // Given back untried: the next instance's claim is its first attempt, not its second.
    EXPECT_EQ(jobs[0].attempt, 1);
  }
  store->stop();
}

// handling.expires: a copy still queued when its message's expiry day has ended is not sent; it
// is a dead letter ("handling-expired"), and the copy of a message not yet expired goes as usual.
TEST_F(Delivery, ACopyPastItsMessagesExpiryIsNeverSent) {
  namespace th = store::test_helpers;
  auto store = std::shared_ptr<store::message_store>(
      store::open_sqlite_store({.path = dir_ / "own" / "store.db"}));
  const auto now = std::chrono::system_clock::now();
  for (const auto& [n, expires_at] :
       {std::pair{1, now - std::chrono::hours(1)}, std::pair{2, now + std::chrono::hours(24)}}) {
    const std::string body = R"({"id":")" + th::make_id(n) + R"("})";  // the sim keeps ids
    store::message_record record{th::make_id(n),          "vn-gialai",
                                 "victim.identification", "2026-11-22T04:38:47Z",
                                 th::fingerprint(body),   body};
    record.deliveries.push_back({"kh-stungtreng", "explicit", body, "[]"});
    record.expires_at = expires_at;
    std::promise<store::accept_outcome> accepted;
    store->accept(std::move(record),
                  [&](store::accept_result r) { accepted.set_value(r.outcome); });
    ASSERT_EQ(accepted.get_future().get(), store::accept_outcome::stored);
  }
  delivery::delivery_options options;
  options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}};
  options.owner = "expiry";
  options.recipients = {"kh-stungtreng"};
  options.poll_interval = std::chrono::milliseconds(20);
  const std::string endpoint =
      "https://127.0.0.1:" + std::to_string(stungtreng_->port()) + "/v1/messages";
  auto workers = std::make_unique<delivery::delivery_service>(
      options, store, [&](std::string_view) -> std::optional<delivery::recipient_info> {
        delivery::recipient_info info;
        info.endpoint = endpoint;
        return info;
      });
  workers->start();
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_TRUE(stungtreng_->has(th::make_id(2)));
  // The expired copy is a dead letter, never sent.
  std::vector<store::dead_letter> dead;
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (dead.empty() && std::chrono::steady_clock::now() < deadline) {
    std::promise<std::vector<store::dead_letter>> listed;
    store->list_dead(10, [&](std::vector<store::dead_letter> d, bool) { listed.set_value(d); });
    dead = listed.get_future().get();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  workers->stop();
  ASSERT_EQ(dead.size(), 1U);
  EXPECT_EQ(dead[0].message_id, th::make_id(1));
  EXPECT_EQ(dead[0].last_error, "handling-expired");
  EXPECT_EQ(dead[0].attempts, 0);  // decided before sending: no attempt counted
  EXPECT_FALSE(stungtreng_->has(th::make_id(1)));
  EXPECT_EQ(stungtreng_->stats().requests, 1U);
  store->stop();
}

// A copy that relies on an agreement (victim data left in it for a holder of `victim-data`) is
// sent only while its recipient holds the agreement: otherwise it is a dead letter
// ("agreement-withdrawn"), never sent. A copy that relies on nothing goes to the same recipient
// as usual, and one relying on an agreement its recipient holds goes too.
TEST_F(Delivery, ACopyRelyingOnAnAgreementItsRecipientNoLongerHoldsIsNeverSent) {
  namespace th = store::test_helpers;
  auto store = std::shared_ptr<store::message_store>(
      store::open_sqlite_store({.path = dir_ / "own" / "store.db"}));
  // 1: full copy for Stung Treng, which holds no agreement now; 2: a copy without victim data for
  // it; 3: a full copy for Ratanakiri, which still holds the agreement.
  for (const auto& [n, recipient, relies_on] :
       {std::tuple{1, "kh-stungtreng", true}, std::tuple{2, "kh-stungtreng", false},
        std::tuple{3, "kh-ratanakiri", true}}) {
    const std::string body = R"({"id":")" + th::make_id(n) + R"("})";  // the sim keeps ids
    store::message_record record{th::make_id(n),          "vn-gialai",
                                 "victim.identification", "2026-11-22T04:38:47Z",
                                 th::fingerprint(body),   body};
    record.deliveries.push_back({recipient, "explicit", body, "[]"});
    if (relies_on) {
      record.deliveries.back().relies_on = {"victim-data"};
    }
    std::promise<store::accept_outcome> accepted;
    store->accept(std::move(record),
                  [&](store::accept_result r) { accepted.set_value(r.outcome); });
    ASSERT_EQ(accepted.get_future().get(), store::accept_outcome::stored);
  }
  delivery::delivery_options options;
  options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}};
  options.owner = "agreements";
  options.recipients = {"kh-stungtreng", "kh-ratanakiri"};
  options.poll_interval = std::chrono::milliseconds(20);
  auto workers = std::make_unique<delivery::delivery_service>(
      options, store, [&](std::string_view partner) -> std::optional<delivery::recipient_info> {
        const bool ratanakiri = partner == "kh-ratanakiri";
        delivery::recipient_info info;
        info.endpoint = "https://127.0.0.1:" +
                        std::to_string((ratanakiri ? ratanakiri_ : stungtreng_)->port()) +
                        "/v1/messages";
        if (ratanakiri) {
          info.agreements = {"victim-data"};
        }
        return info;
      });
  workers->start();
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_TRUE(stungtreng_->has(th::make_id(2)));
  EXPECT_TRUE(ratanakiri_->has(th::make_id(3)));
  std::vector<store::dead_letter> dead;
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (dead.empty() && std::chrono::steady_clock::now() < deadline) {
    std::promise<std::vector<store::dead_letter>> listed;
    store->list_dead(10, [&](std::vector<store::dead_letter> d, bool) { listed.set_value(d); });
    dead = listed.get_future().get();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(dead.size(), 1U);
  EXPECT_EQ(dead[0].message_id, th::make_id(1));
  EXPECT_EQ(dead[0].recipient, "kh-stungtreng");
  EXPECT_EQ(dead[0].last_error, "agreement-withdrawn");

  // Replayed, it meets the same check.
  std::promise<bool> replayed;
  store->replay(th::make_id(1), "kh-stungtreng", {},
                [&](bool found, bool) { replayed.set_value(found); });
  ASSERT_TRUE(replayed.get_future().get());
  const auto again = std::chrono::steady_clock::now() + patience;
  while (workers->counters().dead < 2 && std::chrono::steady_clock::now() < again) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  workers->stop();
  EXPECT_EQ(workers->counters().dead, 2U);
  EXPECT_FALSE(stungtreng_->has(th::make_id(1)));
  EXPECT_EQ(stungtreng_->stats().requests, 1U);
  store->stop();
}

TEST_F(Delivery, TransientFailuresAreRetriedWithBackoffUntilDelivered) {
  // Two failures: below the circuit breaker's threshold (3), so this is plain retrying.
  ratanakiri_->set_faults({.fail_first = 2});
  const auto id = submit_victim("7b2e1d3f-0a9c-4d8b-9f6e-2e3d4c5b6a71");
  ASSERT_TRUE(ratanakiri_->wait_until(
      [](const auto& s) { return s.unique_ids == 1 && s.failures_sent == 2; }, patience));
  auto s =
      status_when(id, [](const auto& d) { return state_of(d, "kh-ratanakiri") == "delivered"; });
  ASSERT_EQ(state_of(s, "kh-ratanakiri"), "delivered");
  for (const auto& r : s["recipients"].GetArray()) {
    if (std::string(r["partner"].GetString()) == "kh-ratanakiri") {
      EXPECT_EQ(r["attempts"].GetInt(), 3);  // two 503s, then the receipt
    }
  }
  EXPECT_EQ(ratanakiri_->stats().unique_ids, 1u);
}

TEST_F(Delivery, PartnerDownThenUpIsDeliveredWhenItComesBack) {
  ratanakiri_->set_faults({.down_for_ms = 600'000});
  const auto id = submit_victim("8c3f2e4a-1b0d-4e9c-8a7f-3f4e5d6c7b82");
  // While it is down the sender sees the retries, their error and the next attempt.
  // (The other recipient is waited for too: it is delivered meanwhile, not held up, but on a slow
  // machine its receipt may land after Ratanakiri's second failure.)
  auto s = status_when(id, [](const auto& d) {
    if (state_of(d, "kh-ratanakiri") != "retrying" || state_of(d, "kh-stungtreng") != "delivered") {
      return false;
    }
    for (const auto& r : d["recipients"].GetArray()) {
      if (std::string(r["partner"].GetString()) == "kh-ratanakiri") {
        return r["attempts"].GetInt() >= 2;
      }
    }
    return false;
  });
  ASSERT_EQ(state_of(s, "kh-ratanakiri"), "retrying");
  for (const auto& r : s["recipients"].GetArray()) {
    if (std::string(r["partner"].GetString()) == "kh-ratanakiri") {
      EXPECT_TRUE(r.HasMember("nextAttemptAt"));
      EXPECT_TRUE(r.HasMember("lastError"));
    }
  }
  EXPECT_EQ(state_of(s, "kh-stungtreng"), "delivered");  // the other recipient was not held up
  ratanakiri_->set_faults({});                           // back up
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& st) { return st.unique_ids == 1; }, patience));
  s = status_when(id, [](const auto& d) { return state_of(d, "kh-ratanakiri") == "delivered"; });
  EXPECT_EQ(state_of(s, "kh-ratanakiri"), "delivered");
}

TEST_F(Delivery, PermanentRefusalIsADeadLetterUntilReplayed) {
  stungtreng_->set_faults({.always_status = 400});
  const auto id = submit_victim("9d4a3f5b-2c1e-4f0d-9b8a-4a5f6e7d8c93");
  auto s = status_when(id, [](const auto& d) { return state_of(d, "kh-stungtreng") == "dead"; });
  ASSERT_EQ(state_of(s, "kh-stungtreng"), "dead");
  for (const auto& r : s["recipients"].GetArray()) {
    if (std::string(r["partner"].GetString()) == "kh-stungtreng") {
      EXPECT_EQ(r["attempts"].GetInt(), 1);  // a permanent refusal is not retried
      // The sender learns the code; the refusing partner's words are not passed on to it.
      EXPECT_EQ(std::string(r["lastError"].GetString()), "http-400");
    }
  }
  EXPECT_EQ(stungtreng_->stats().unique_ids, 0u);
  // The refusing partner sees its own row with its own words.
  auto stungtreng = partner_client("kh-stungtreng");
  const auto own = parse(get(stungtreng, "/v1/messages/" + id).body);
  ASSERT_EQ(own["recipients"].Size(), 1U);
  EXPECT_EQ(std::string(own["recipients"][0]["lastError"].GetString()).rfind("http-400: ", 0), 0U);
  EXPECT_NE(std::string(own["recipients"][0]["lastError"].GetString())
                .find("simulated permanent failure"),
            std::string::npos);

  // An operator lists the dead letters with the CLI on the store itself: the look is audited.
  write_file(dir_ / "replay.json",
             R"({"store": {"path": ")" + config_.store.path.string() + R"("}})");
  const std::string list = mxgw_binary().string() + " queue dead --config " +
                           (dir_ / "replay.json").string() + " > " + (dir_ / "dead.txt").string();
  ASSERT_EQ(WEXITSTATUS(std::system(list.c_str())), 0);
  EXPECT_NE(read_file(dir_ / "dead.txt").find(id + "  kh-stungtreng"), std::string::npos);
  const std::string viewed = mxgw_binary().string() + " audit query --config " +
                             (dir_ / "replay.json").string() + " --event deadletters.viewed > " +
                             (dir_ / "viewed.txt").string();
  ASSERT_EQ(WEXITSTATUS(std::system(viewed.c_str())), 0);
  const std::string entries = read_file(dir_ / "viewed.txt");
  EXPECT_NE(entries.find(R"("actor":"cli:)"), std::string::npos) << entries;
  EXPECT_NE(entries.find(R"("count":"1")"), std::string::npos) << entries;

  // The partner fixes its side; an operator replays the dead letter with the CLI.
  stungtreng_->set_faults({});
  const std::string command = mxgw_binary().string() + " queue replay --config " +
                              (dir_ / "replay.json").string() + " --message " + id +
                              " --recipient kh-stungtreng > /dev/null";
  ASSERT_EQ(WEXITSTATUS(std::system(command.c_str())), 0);
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& st) { return st.unique_ids == 1; }, patience));
  s = status_when(id, [](const auto& d) { return state_of(d, "kh-stungtreng") == "delivered"; });
  EXPECT_EQ(state_of(s, "kh-stungtreng"), "delivered");
  // Replaying what is not dead is refused.
  ASSERT_NE(WEXITSTATUS(std::system(command.c_str())), 0);
}

TEST_F(Delivery, ARefusalsTextIsShownAsReadableTextWhateverThePartnerSent) {
  // A refusal in Khmer, longer than what is kept, with a terminal escape and bytes that are not
  // UTF-8: cut at 400 bytes it would end inside a letter.
  std::string answer = "\x1b[2J\xff ";
  for (int i = 0; i < 200; ++i) {
    answer += "ក";
  }
  stungtreng_->set_faults({.always_status = 422, .always_body = answer});
  const auto id = submit_victim("9d4a3f5b-2c1e-4f0d-9b8a-4a5f6e7d8c94");
  const auto s =
      status_when(id, [](const auto& d) { return state_of(d, "kh-stungtreng") == "dead"; });
  ASSERT_EQ(state_of(s, "kh-stungtreng"), "dead");
  // The refusing partner reads its own words back, as readable text (the sender gets the code).
  auto stungtreng = partner_client("kh-stungtreng");
  const auto own_error = [&] {
    const auto own = parse(get(stungtreng, "/v1/messages/" + id).body);
    return own.IsObject() && own["recipients"].Size() == 1
               ? std::string(own["recipients"][0]["lastError"].GetString())
               : std::string("(no own row)");
  };
  const std::string error = own_error();
  EXPECT_EQ(error.rfind("http-422: \xEF\xBF\xBD[2J\xEF\xBF\xBD \xE1\x9E\x80", 0), 0U) << error;
  // The 400 bytes of the excerpt: the 10 above and 130 whole letters.
  EXPECT_EQ(error.size(), std::string("http-422: ").size() + 10 + 130 * 3);

  // A row written before refusals were cleaned on their way in is cleaned on its way out.
  {
    store::test_helpers::raw_db db(config_.store.path);
    db.exec("UPDATE deliveries SET last_error = X'687474702d3432323a20e19e1b5b324aff' "
            "WHERE recipient = 'kh-stungtreng'");  // "http-422: ", half a letter, ESC [2J, 0xFF
  }
  EXPECT_EQ(own_error(), "http-422: \xEF\xBF\xBD\xEF\xBF\xBD[2J\xEF\xBF\xBD");
  const auto again = status(id);
  ASSERT_EQ(state_of(again, "kh-stungtreng"), "dead");
  for (const auto& r : again["recipients"].GetArray()) {
    if (std::string(r["partner"].GetString()) == "kh-stungtreng") {
      EXPECT_EQ(std::string(r["lastError"].GetString()), "http-422");
    }
  }
}

// A partner that takes the message but answers with more than the client reads (64 KiB) has
// taken it: the copy is delivered at the first attempt, not resent until it is a dead letter, and
// the receipt kept is the beginning of the answer (max_receipt_bytes of it).
TEST_F(Delivery, AReceiptOverTheReadLimitIsADeliveryWithTheReceiptCut) {
  namespace th = store::test_helpers;
  const std::string receipt = R"({"id":")" + th::make_id(1) + R"(","status":"accepted","trace":")" +
                              std::string(100 * 1024, 't') + R"("})";
  stungtreng_->set_faults({.always_status = 202, .always_body = receipt});
  auto store = own_store();
  accept_for_stungtreng(*store, 1);
  auto workers = own_workers(store, quick_retries(5));
  const store::recipient_status row = settled(*store, th::make_id(1));
  EXPECT_EQ(row.state, "delivered");
  EXPECT_EQ(row.attempts, 1);
  EXPECT_TRUE(row.receipt == receipt.substr(0, store::max_receipt_bytes))
      << "a receipt of " << row.receipt.size() << " bytes";
  EXPECT_EQ(stungtreng_->stats().requests, 1U);
  EXPECT_EQ(workers->counters().retries, 0U);
  EXPECT_EQ(workers->circuit_state("kh-stungtreng"), "closed");

  // The cut answer's connection is not used again; the next delivery goes as usual.
  stungtreng_->set_faults({});
  accept_for_stungtreng(*store, 2);
  workers->wake();
  EXPECT_EQ(settled(*store, th::make_id(2)).state, "delivered");
  EXPECT_TRUE(stungtreng_->has(th::make_id(2)));
  workers->stop();
  store->stop();
}

// A refusal over the read limit is a refusal: a dead letter at once with the partner's status,
// not a transient failure tried max_attempts times.
TEST_F(Delivery, ARefusalOverTheReadLimitIsStillARefusal) {
  namespace th = store::test_helpers;
  stungtreng_->set_faults(
      {.always_status = 422, .always_body = "unknown type " + std::string(100 * 1024, 'x')});
  auto store = own_store();
  accept_for_stungtreng(*store, 1);
  auto workers = own_workers(store, quick_retries(5));
  const store::recipient_status row = settled(*store, th::make_id(1));
  workers->stop();
  EXPECT_EQ(row.state, "dead");
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(row.last_error.rfind("http-422: unknown type xxx", 0), 0U) << row.last_error;
  EXPECT_EQ(stungtreng_->stats().requests, 1U);
  store->stop();
}

// A dead letter replayed long after its message was accepted gets its full retries: max_age
// counts from the replay, not from the acceptance.
TEST_F(Delivery, AReplayedDeadLetterOlderThanMaxAgeGetsItsFullRetries) {
  namespace th = store::test_helpers;
  // Accepted two hours ago (max_age is one hour), refused then and left dead.
  std::atomic<std::int64_t> shift_ms{-2 * 3600 * 1000};
  auto store = own_store(&shift_ms);
  accept_for_stungtreng(*store, 1);
  std::promise<std::vector<store::delivery_job>> claimed;
  store->claim_due(
      "earlier", 10, std::chrono::minutes(1), {},
      [&](std::vector<store::delivery_job> jobs, bool) { claimed.set_value(std::move(jobs)); });
  const auto jobs = claimed.get_future().get();
  ASSERT_EQ(jobs.size(), 1U);
  store::attempt_report refused{jobs[0].message_id, jobs[0].recipient, "earlier",
                                store::attempt_result::dead};
  refused.attempt = jobs[0].attempt;
  refused.error = "http-400";
  std::promise<bool> reported;
  store->report(std::move(refused), [&](bool ok) { reported.set_value(ok); });
  ASSERT_TRUE(reported.get_future().get());

  // Now the partner has fixed its side but is overloaded: two 503s before it takes it.
  shift_ms = 0;
  std::promise<bool> replayed;
  store->replay(th::make_id(1), "kh-stungtreng", {},
                [&](bool found, bool ok) { replayed.set_value(found && ok); });
  ASSERT_TRUE(replayed.get_future().get());
  stungtreng_->set_faults({.fail_first = 2});
  auto workers = own_workers(store, quick_retries(3));
  const store::recipient_status row = settled(*store, th::make_id(1));
  workers->stop();
  EXPECT_EQ(row.state, "delivered") << row.last_error;
  EXPECT_EQ(row.attempts, 3);
  EXPECT_EQ(stungtreng_->stats().requests, 3U);
  EXPECT_TRUE(stungtreng_->has(th::make_id(1)));
  store->stop();
}

// The serial (upper-case hex) of the certificate in `pem_file`.
std::string serial_of(const std::filesystem::path& pem_file) {
  const std::string pem = read_file(pem_file);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  std::string serial = cert != nullptr ? identity::facts_of(cert).serial_hex : "";
  X509_free(cert);
  BIO_free(bio);
  return serial;
}

TEST_F(Delivery, AnEndpointWhoseCertificateIsOnANewCrlGetsNothingMore) {
  const auto first = submit_victim("0b7e3c1d-5a4f-4e2d-8c1b-9a8f7e6d5c01");
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& st) { return st.unique_ids == 1; }, patience));
  // Its server key is stolen: the CA revokes the certificate both stand-ins present, and the
  // operator reloads. The kept-alive connections to them must not carry the next message.
  write_file(dir_ / "crl.pem", ca_->make_crl({{serial_of(dir_ / "server.pem")}}));
  ASSERT_TRUE(gateway_->reload().empty());
  const auto second = submit_victim("0b7e3c1d-5a4f-4e2d-8c1b-9a8f7e6d5c02");
  auto s = status_when(second, [](const auto& d) {
    return state_of(d, "kh-ratanakiri") == "retrying" && state_of(d, "kh-stungtreng") == "retrying";
  });
  for (const auto& r : s["recipients"].GetArray()) {
    EXPECT_EQ(std::string(r["state"].GetString()), "retrying");
    EXPECT_EQ(std::string(r["lastError"].GetString()), "tls");
  }
  EXPECT_EQ(ratanakiri_->stats().unique_ids, 1U);
  EXPECT_FALSE(ratanakiri_->has(second));
  EXPECT_FALSE(stungtreng_->has(second));

  // A new certificate would be issued; here the CA lifts the revocation and it goes out.
  write_file(dir_ / "crl.pem", ca_->make_crl({}));
  ASSERT_TRUE(gateway_->reload().empty());
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& st) { return st.unique_ids == 2; }, patience));
  EXPECT_TRUE(ratanakiri_->has(first));
  EXPECT_TRUE(ratanakiri_->has(second));
}

// A circuit that opened while a claim waited in the store's queue: the copy claimed is given back
// untried, due when the circuit may close (not a whole breaker_open_ms after the give-back). When
// the circuit goes half-open, one copy is claimed (the probe), not a batch of which the others
// would be given back to wait once more; so no copy but the first is ever given back.
TEST_F(Delivery, ACircuitGivesBackOnlyWhatItMustAndUntilItMayClose) {
  namespace th = store::test_helpers;
  constexpr auto breaker_open = std::chrono::milliseconds(1000);
  const auto path = dir_ / "own" / "store.db";
  store::sqlite_options so;
  so.path = path;
  so.busy_timeout_ms = 60000;  // the gate holds the write lock while the claim waits
  auto store = std::make_shared<store::sqlite_store>(so);
  // Stung Treng answers every POST after 300 ms, the first with a 503.
  stungtreng_->set_faults({.fail_first = 1, .latency_ms = 300});
  accept_for_stungtreng(*store, 1);

  delivery::delivery_options options;
  options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}};
  options.owner = "breaker";
  options.recipients = {"kh-stungtreng"};
  options.poll_interval = std::chrono::seconds(60);  // only the test's wakes claim
  options.breaker_failures = 1;
  options.breaker_open = breaker_open;
  const std::string endpoint =
      "https://127.0.0.1:" + std::to_string(stungtreng_->port()) + "/v1/messages";
  auto workers = std::make_unique<delivery::delivery_service>(
      options, store, [&](std::string_view) -> std::optional<delivery::recipient_info> {
        delivery::recipient_info info;
        info.endpoint = endpoint;
        info.limits = quick_retries(5);
        info.concurrency = 2;
        return info;
      });
  workers->start();
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.held == 1; }, patience));
  accept_for_stungtreng(*store, 2);

  // Hold the writer, then claim: message 2 is claimed (the circuit is closed, one of two slots
  // busy) but the claim waits in the store's queue while message 1's 503 opens the circuit.
  th::writer_gate gate(path);
  std::promise<bool> first;
  store->append_audit({}, [&](bool ok) { first.set_value(ok); });
  th::wait_until_writer_took_all(*store);
  workers->wake();
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (store->stats().queued == 0 || workers->circuit_state("kh-stungtreng") != "open") {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "no claim, or the circuit never opened";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto opened_by = std::chrono::system_clock::now();     // the circuit opened before this
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the give-back comes later
  gate.release();
  EXPECT_TRUE(first.get_future().get());

  // Message 2 is given back untried, due when the circuit may close.
  const auto given_back = [&]() -> std::optional<store::recipient_status> {
    const auto until = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < until) {
      std::promise<std::optional<store::message_status>> found;
      store->find(th::make_id(2), [&](std::optional<store::message_status> s, bool) {
        found.set_value(std::move(s));
      });
      const auto status = found.get_future().get();
      if (status && status->recipients.size() == 1 &&
          status->recipients[0].last_error == "circuit-open") {
        return status->recipients[0];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
  }();
  ASSERT_TRUE(given_back.has_value()) << "message 2 was not given back";
  EXPECT_EQ(given_back->state, "retrying");
  EXPECT_EQ(given_back->attempts, 0);
  ASSERT_TRUE(given_back->next_attempt_at.has_value());
  EXPECT_LE(*given_back->next_attempt_at, opened_by + breaker_open)
      << "due a whole breaker_open_ms after the give-back, not when the circuit may close";

  // Half-open: both copies are due. One probe goes; its success closes the circuit, and then the
  // other goes. Neither is given back again.
  while (workers->circuit_state("kh-stungtreng") != "half-open") {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the circuit never went half-open";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  workers->wake();
  EXPECT_EQ(settled(*store, th::make_id(1)).state, "delivered");
  EXPECT_EQ(settled(*store, th::make_id(2)).state, "delivered");
  workers->stop();
  std::promise<std::vector<audit::audit_row>> audit;
  store->read_audit(
      0, 1000, [&](std::vector<audit::audit_row> rows, bool) { audit.set_value(std::move(rows)); });
  int give_backs = 0;
  for (const auto& row : audit.get_future().get()) {
    if (row.event == "delivery.retry" && row.entry.find("circuit-open") != std::string::npos) {
      ++give_backs;
    }
  }
  EXPECT_EQ(give_backs, 1) << "copies claimed with the probe were given back to wait again";
  store->stop();
}

// A partner slower than the lease, with a timeout longer than the lease (the configuration refuses
// that now, but the admin API of another instance, or an older one, may still say so): each
// attempt ends within its lease, as a timeout, and the copy is retried within its limits and
// becomes a dead letter at the last, instead of being claimed and sent again every lease period
// for ever while every late receipt is ignored.
TEST_F(Delivery, APartnerSlowerThanTheLeaseIsNotSentTheCopyEveryLeasePeriod) {
  namespace th = store::test_helpers;
  stungtreng_->set_faults({.latency_ms = 1600});
  auto store = own_store();
  accept_for_stungtreng(*store, 1);
  delivery::delivery_options options;
  options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}};
  options.owner = "lease";
  options.recipients = {"kh-stungtreng"};
  options.poll_interval = std::chrono::milliseconds(20);
  options.lease = std::chrono::milliseconds(1000);  // the configuration's least
  options.breaker_failures = 100;
  const std::string endpoint =
      "https://127.0.0.1:" + std::to_string(stungtreng_->port()) + "/v1/messages";
  auto workers = std::make_unique<delivery::delivery_service>(
      options, store, [&](std::string_view) -> std::optional<delivery::recipient_info> {
        delivery::recipient_info info;
        info.endpoint = endpoint;
        info.timeout = std::chrono::milliseconds(5000);
        info.limits = quick_retries(3);
        return info;
      });
  workers->start();
  const auto row = settled(*store, th::make_id(1));
  workers->stop();
  EXPECT_EQ(row.state, "dead") << "attempts " << row.attempts;
  EXPECT_EQ(row.attempts, 3);
  EXPECT_NE(row.last_error.find("timeout"), std::string::npos) << row.last_error;
  // One POST per attempt: none was sent again by a claim of the same attempt's row.
  EXPECT_EQ(stungtreng_->stats().requests, 3U);
  store->stop();
}

// A copy whose last allowed attempt outlived its lease (a worker that died) is claimed once more:
// the limits are reached, and it is a dead letter without being sent again.
TEST_F(Delivery, ACopyClaimedPastItsLastAttemptIsADeadLetterNotSent) {
  namespace th = store::test_helpers;
  auto store = own_store();
  accept_for_stungtreng(*store, 1);
  // Two claims by an instance that dies each time: its leases run out.
  for (int attempt = 1; attempt <= 2; ++attempt) {
    std::promise<std::vector<store::delivery_job>> claimed;
    store->claim_due(
        "crashed", 10, std::chrono::milliseconds(1), {{"kh-stungtreng", 4}},
        [&](std::vector<store::delivery_job> jobs, bool) { claimed.set_value(std::move(jobs)); });
    const auto jobs = claimed.get_future().get();
    ASSERT_EQ(jobs.size(), 1U);
    ASSERT_EQ(jobs[0].attempt, attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the lease runs out
  }
  auto workers = own_workers(store, quick_retries(2));
  const auto row = settled(*store, th::make_id(1));
  workers->stop();
  EXPECT_EQ(row.state, "dead");
  EXPECT_EQ(row.last_error, "attempts-exhausted");
  EXPECT_FALSE(stungtreng_->has(th::make_id(1)));
  EXPECT_EQ(stungtreng_->stats().requests, 0U);
  store->stop();
}

class DeliveryLongBreaker : public Delivery {
 protected:
  std::uint32_t breaker_open_ms() const override { return 60'000; }
};

TEST_F(DeliveryLongBreaker, ACircuitBrokenPartnerDoesNotHoldUpAHealthyOne) {
  ratanakiri_->set_faults({.fail_rate = 1.0, .seed = 1});  // every POST answered 503
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    char id[37];
    std::snprintf(id, sizeof id, "ad5b4a6c-3d2f-4a1e-8c9b-%012d", i);
    ids.push_back(submit_victim(id));
  }
  // Every message reaches the healthy partner while the other one keeps failing.
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 12; }, patience));
  auto* delivery = gateway_->delivery();
  ASSERT_NE(delivery, nullptr);
  EXPECT_EQ(delivery->circuit_state("kh-ratanakiri"), "open");
  EXPECT_EQ(delivery->circuit_state("kh-stungtreng"), "closed");
  // With the circuit open the failing partner is not hammered: far fewer requests than
  // 12 messages x 5 attempts.
  EXPECT_LT(ratanakiri_->stats().requests, 12u);
  EXPECT_EQ(ratanakiri_->stats().unique_ids, 0u);
}

}  // namespace
}  // namespace mxgw::test
