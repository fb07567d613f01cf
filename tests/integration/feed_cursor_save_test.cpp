// A notice feed sweep whose end cannot be saved: the poller saves it again after a backoff and
// starts the next sweep no earlier than interval_s, instead of polling the partner's feed again at
// once. The poller reads the stand-in feed (partner-sim with notice fixtures) over mutual TLS and
// accepts through the partner API into a real SQLite store, behind a store that refuses the first
// saves of the completed sweep's cursor and passes everything else through.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapters/adapter.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/live.hpp"
#include "gateway/common/log.hpp"
#include "gateway/feed/feed_poller.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/sim/notice_feed.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/support/forwarding_store.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

using store::message_store;

constexpr auto patience = std::chrono::seconds(30);
/// Shorter than interval_s by far: no sweep may start within it.
constexpr auto quiet_window = std::chrono::milliseconds(1500);
constexpr std::size_t all_notices = 7;  // the fixtures: red 5 (3 pages of 2), yellow 2
constexpr const char* feed_partner = "interpol-feed";

/// Forwards everything to a real store, except that the first `failures` saves of the feed's
/// cursor for sweep `sweep` (the save at the end of the sweep before it) answer `failed`, as a
/// store that cannot write (disk full, a lost database connection) would.
class failing_cursor_store final : public forwarding_store {
 public:
  failing_cursor_store(std::shared_ptr<message_store> inner, std::int64_t sweep, int failures)
      : forwarding_store(std::move(inner)), sweep_(sweep), failures_left_(failures) {}

  std::atomic<int> saves_of_sweep{0};  ///< cursor saves for `sweep`, failed or not
  std::atomic<int> failed_saves{0};    ///< those answered `failed`

  void put_states(std::vector<store::state_put> p, std::vector<audit::audit_record> a,
                  puts_handler h) override {
    if (p.size() == 1 && cursor_of_sweep(p.front().item)) {
      saves_of_sweep.fetch_add(1);
      if (failures_left_.fetch_sub(1) > 0) {
        failed_saves.fetch_add(1);
        h(store::put_outcome::failed, {});
        return;
      }
    }
    forwarding_store::put_states(std::move(p), std::move(a), std::move(h));
  }

  void list_state(std::string k, std::int64_t a, state_handler h) override {
    {
      std::lock_guard lock(held_mutex_);
      if (hold_state_reads) {
        held_.emplace_back([this, k = std::move(k), a, h = std::move(h)]() mutable {
          forwarding_store::list_state(std::move(k), a,
                                       [this, h = std::move(h)](auto items, bool ok) {
                                         h(std::move(items), ok);
                                         held_answered.fetch_add(1);
                                       });
        });
        held_reads.fetch_add(1);
        return;
      }
    }
    forwarding_store::list_state(std::move(k), a, std::move(h));
  }

  /// While set, reads of the feed's state wait until release_held_reads(), as a busy store's do.
  bool hold_state_reads = false;
  std::atomic<int> held_reads{0};     ///< reads held back so far
  std::atomic<int> held_answered{0};  ///< of those, answered after their release

  void release_held_reads() {
    std::vector<std::function<void()>> reads;
    {
      std::lock_guard lock(held_mutex_);
      reads.swap(held_);
    }
    for (auto& read : reads) {
      read();
    }
  }

 private:
  bool cursor_of_sweep(const store::state_item& item) const {
    if (item.kind != "feed" || item.key != std::string(feed_partner) + "/cursor") {
      return false;
    }
    rapidjson::Document doc;
    doc.Parse(item.value.c_str(), item.value.size());
    return !doc.HasParseError() && doc.IsObject() && doc.HasMember("sweep") &&
           doc["sweep"].IsInt64() && doc["sweep"].GetInt64() == sweep_;
  }

  std::int64_t sweep_;
  std::atomic<int> failures_left_;
  std::mutex held_mutex_;
  std::vector<std::function<void()>> held_;
};

class FeedCursorSave : public ::testing::Test {
 protected:
  /// The first saves of sweep 2's cursor (the end of sweep 1) that fail.
  static constexpr int failed_saves = 2;

  void SetUp() override {
    const auto now = std::chrono::system_clock::now();
    ca_ = std::make_unique<identity::cert_authority>(identity::cert_authority::create(
        "mxgw test CA", now - std::chrono::hours(1), now + std::chrono::hours(24)));
    write_file(dir_ / "ca.pem", ca_->cert_pem());
    identity::certificate_request server_req;
    server_req.common_name = "localhost";
    server_req.san_dns = {"localhost"};
    server_req.san_ips = {"127.0.0.1"};
    server_req.server_auth = true;
    const auto server = ca_->issue(server_req);
    write_file(dir_ / "server.pem", server.cert_pem);
    identity::write_file_with_mode(dir_ / "server.key", server.key_pem, 0600);
    log::init({log::level::info, dir_ / "gateway.log"});

    // The stand-in notice service, over mutual TLS on a port of its own choosing.
    sim::partner_sim_options sim_options;
    sim_options.cert = dir_ / "server.pem";
    sim_options.key = dir_ / "server.key";
    sim_options.ca = dir_ / "ca.pem";
    sim_options.format = "interpol";
    sim_options.fixtures_dir = source_dir() / "config" / "examples" / "interpol";
    feed_sim_ = std::make_unique<sim::partner_sim>(sim_options);
    feed_sim_->start();

    // One feed, polled every 600 s: far longer than the test waits for anything.
    std::string partners = R"({"partners":[
      {"id":"interpol-feed","name":"INTERPOL public notices, stand-in","country":"FR",
       "adapter":"interpol","feed":{"url":"@URL@","interval_s":600,
       "notice_types":["red","yellow"],"page_size":2}},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "endpoint":"https://127.0.0.1:9/v1/messages","agreements":["victim-data"],
       "purposes":["investigation","victim-protection","identity-verification"]}]})";
    partners.replace(partners.find("@URL@"), 5,
                     "https://127.0.0.1:" + std::to_string(feed_sim_->port()));
    write_file(dir_ / "partners.json", partners);
    write_file(dir_ / "routing.json", R"({"rules":[
      {"id":"notices-to-thanhhoa","match":{"types":["person.wanted","victim.identification"],
       "senders":["interpol-feed"]},"add":["vn-thanhhoa"]}]})");
    std::vector<identity::config_problem> problems;
    const auto formats = adapters::adapter_ids();
    partners_ = std::make_shared<identity::partner_registry>(
        identity::partner_registry::load(dir_ / "partners.json", problems, &formats));
    checker_ = std::make_shared<pipeline::canonical_checker>(pipeline::canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    auto rules = std::make_shared<pipeline::routing_rules>(pipeline::routing_rules::load(
        dir_ / "routing.json", problems, *partners_, checker_->tables()));
    ASSERT_TRUE(problems.empty()) << problems.front().file << ": " << problems.front().reason;

    real_ = std::shared_ptr<message_store>(store::open_sqlite_store({.path = dir_ / "s.db"}));
    store_ = std::make_shared<failing_cursor_store>(real_, 2, failed_saves);
    auto seed = std::make_shared<identity::trust_state>();
    seed->partners = *partners_;
    api_ = std::make_shared<http::partner_api>(
        checker_, std::make_shared<identity::trust_store>(seed),
        std::make_shared<live<pipeline::routing_rules>>(std::move(rules)), store_);
  }

  void TearDown() override {
    poller_.reset();
    if (real_) {
      real_->stop();
    }
    feed_sim_.reset();
    log::init({});
  }

  /// A poller (a fresh one: a restart) over the failing store, polling the stand-in feed.
  void start_poller() {
    poller_.reset();
    feed::poller_options options;
    options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}, {}};
    options.request_timeout = std::chrono::seconds(10);
    options.backoff_base = std::chrono::milliseconds(20);
    options.backoff_cap = std::chrono::milliseconds(200);
    options.seed = 1;
    const auto* feed = partners_->find(feed_partner);
    ASSERT_NE(feed, nullptr);
    ASSERT_TRUE(feed->feed.has_value());
    auto accept = [this, held = poller_held_](std::string sender, std::string canonical,
                                              std::optional<std::vector<std::string>> only_to,
                                              feed::accept_done done) {
      rapidjson::Document doc;
      doc.Parse(canonical.c_str(), canonical.size());
      {
        std::lock_guard lock(accepted_mutex_);
        ++accepted_[std::string(json::get_string(doc, "id"))];
      }
      api_->accept_canonical(std::move(sender), std::move(canonical), std::move(only_to),
                             [done = std::move(done)](http::response r) { done(r.status); });
    };
    poller_ = std::make_unique<feed::feed_poller>(
        options, std::vector<feed::feed_source>{{feed_partner, *feed->feed, false}}, store_,
        &checker_->tables(), std::move(accept));
    poller_->start();
  }

  sim::notice_feed& notices() { return *feed_sim_->feed(); }

  /// The list pages of every type the feed was asked for so far.
  std::uint64_t list_requests() {
    std::uint64_t n = 0;
    for (int page = 1; page <= 4; ++page) {
      n += notices().page_requests("red", page) + notices().page_requests("yellow", page);
    }
    return n;
  }

  std::map<std::string, int> accepted() {
    std::lock_guard lock(accepted_mutex_);
    return accepted_;
  }

  /// The feed's cursor as the real store holds it (empty when there is none).
  std::string stored_cursor() {
    std::promise<std::string> value;
    real_->list_state("feed", 0, [&value](std::vector<store::state_item> items, bool) {
      std::string v;
      for (const auto& item : items) {
        if (item.key == std::string(feed_partner) + "/cursor") {
          v = item.value;
        }
      }
      value.set_value(v);
    });
    return value.get_future().get();
  }

  bool stored(const std::string& id) {
    std::promise<bool> found;
    real_->find(id, [&found](std::optional<store::message_status> s, bool ok) {
      found.set_value(ok && s.has_value());
    });
    return found.get_future().get();
  }

  std::string log_text() const {
    log::flush();
    return read_file(dir_ / "gateway.log");
  }

  /// Waits (bounded) until the log holds `text` `times` times.
  bool log_shows(const std::string& text, std::size_t times) const {
    for (int i = 0; i < 300; ++i) {
      const std::string log = log_text();
      std::size_t n = 0;
      for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) {
        ++n;
      }
      if (n >= times) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  temp_dir dir_;
  std::unique_ptr<identity::cert_authority> ca_;
  std::unique_ptr<sim::partner_sim> feed_sim_;
  std::shared_ptr<identity::partner_registry> partners_;
  std::shared_ptr<pipeline::canonical_checker> checker_;
  std::shared_ptr<message_store> real_;
  std::shared_ptr<failing_cursor_store> store_;
  std::shared_ptr<http::partner_api> api_;
  std::unique_ptr<feed::feed_poller> poller_;
  std::mutex accepted_mutex_;
  std::map<std::string, int> accepted_;  ///< canonical id -> times handed to the accept path
  /// Held by every poller's accept function: while another owner has it, something still holds
  /// a poller's state.
  std::shared_ptr<int> poller_held_ = std::make_shared<int>(0);
};

TEST_F(FeedCursorSave, AFailedSaveAtASweepsEndIsRetriedAndTheNextSweepWaitsForTheInterval) {
  ASSERT_NO_FATAL_FAILURE(start_poller());
  // Sweep 1 reads every page and sends every notice; saving its end fails twice, then succeeds.
  ASSERT_TRUE(poller_->wait_until([](const auto& c) { return c.sweeps >= 1; }, patience))
      << log_text();
  EXPECT_EQ(store_->failed_saves.load(), failed_saves);
  EXPECT_EQ(store_->saves_of_sweep.load(), failed_saves + 1);  // saved again until it held
  EXPECT_EQ(poller_->counters().errors, static_cast<std::uint64_t>(failed_saves));
  // The partner's feed was not polled again: one request per list page, sweep 1's.
  EXPECT_EQ(notices().page_requests("red", 1), 1u);
  EXPECT_EQ(notices().page_requests("yellow", 1), 1u);
  const auto lists = list_requests();
  EXPECT_EQ(lists, 4u);  // red 1-3, yellow 1
  // Nor within a window far shorter than interval_s.
  EXPECT_FALSE(poller_->wait_until([](const auto& c) { return c.pages > 4; }, quiet_window));
  EXPECT_EQ(list_requests(), lists);
  // Every notice sent once, and stored.
  EXPECT_EQ(poller_->counters().sent, all_notices);
  const auto sent = accepted();
  EXPECT_EQ(sent.size(), all_notices);
  for (const auto& [id, times] : sent) {
    EXPECT_EQ(times, 1) << id;
    EXPECT_TRUE(stored(id)) << id;
  }
  // The store holds the completed sweep: the next one, at its start, and when sweep 1 started.
  rapidjson::Document cursor;
  const auto value = stored_cursor();
  cursor.Parse(value.c_str(), value.size());
  ASSERT_TRUE(cursor.IsObject()) << value;
  EXPECT_EQ(cursor["sweep"].GetInt64(), 2);
  EXPECT_EQ(cursor["typeIndex"].GetUint64(), 0u);
  EXPECT_STREQ(cursor["page"].GetString(), "");
  EXPECT_GT(cursor["lastSweepStartedMs"].GetInt64(), 0);
  // The log says what failed and what happens next, with no notice's content or id.
  const std::string text = log_text();
  EXPECT_NE(text.find("state-unwritable"), std::string::npos) << text;
  EXPECT_NE(text.find("sweep 1 is complete but its end could not be saved"), std::string::npos)
      << text;
  for (const auto& id : {"2026/1000", "2026-1000", "2026/2041", "2026-2041", "2025/7702"}) {
    EXPECT_EQ(text.find(id), std::string::npos) << id;
  }

  // A restart now resumes at sweep 2 and waits for the interval too: nothing read, nothing sent.
  ASSERT_NO_FATAL_FAILURE(start_poller());
  ASSERT_TRUE(log_shows("resuming sweep 2 at red page 1", 1)) << log_text();
  EXPECT_FALSE(poller_->wait_until([](const auto& c) { return c.pages > 0; }, quiet_window));
  EXPECT_EQ(list_requests(), lists);
  EXPECT_EQ(poller_->counters().sent, 0u);
  EXPECT_EQ(accepted().size(), all_notices);
}

TEST_F(FeedCursorSave, APollerStoppedWhileTheStoreReadsItsStateLeavesNothingBehind) {
  // The poller starts by reading its saved state; the store answers from its own thread, here
  // only after the poller was told to stop. The stop waits for that answer; a poller whose loop
  // had ended first would have the answer posted into an io_context that no longer runs, where
  // it would hold the poller's state, and that io_context, for ever.
  store_->hold_state_reads = true;
  ASSERT_NO_FATAL_FAILURE(start_poller());
  for (int i = 0; i < 300 && store_->held_reads.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(store_->held_reads.load(), 1);
  std::thread store_thread([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    store_->release_held_reads();
  });
  poller_.reset();  // stops it
  store_thread.join();
  for (int i = 0; i < 300 && store_->held_answered.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(store_->held_answered.load(), 1);
  // The store's thread lets go of the answered callback (and what it holds) just after calling
  // it; a poller whose state outlives it never lets go.
  for (int i = 0; i < 500 && poller_held_.use_count() != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(poller_held_.use_count(), 1) << "the stopped poller's state outlived it";
  EXPECT_EQ(list_requests(), 0u);  // stopped before it read its state: it asked the feed nothing
}

}  // namespace
}  // namespace mxgw::test
