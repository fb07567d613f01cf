// A notice feed follows its partner's live state: a real gateway polls the stand-in feed
// (partner-sim with notice fixtures) over mutual TLS for two feed partners, and an administrator
// disables, enables and edits one of them through the admin API. The other feed keeps sweeping the
// same notices: it is the clock that shows what the changed one would have done meanwhile. Also
// the partner API's accept path for feeds refuses a disabled or held sender, and the poller sends
// nothing it refused.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
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
#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(30);
constexpr std::size_t all_notices = 7;  // the fixtures: red 5 (3 pages of 2), yellow 2
constexpr const char* feed_partner = "interpol-feed";    // the one the administrator changes
constexpr const char* clock_partner = "interpol-relay";  // the same notices, left alone

std::filesystem::path fixtures() {
  return source_dir() / "config" / "examples" / "interpol";
}

/// Lines of `log` with `event` logged for `partner`.
std::size_t lines_of(const std::string& log, const std::string& event, const std::string& partner) {
  std::size_t n = 0;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"event\":\"" + event + "\"") != std::string::npos &&
        line.find("\"partner\":\"" + partner + "\"") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

/// The partners-file entry of a feed partner polling `url` every second.
std::string feed_entry(const std::string& id, const std::string& url) {
  return R"({"id":")" + id + R"(","name":"INTERPOL public notices, stand-in","country":"FR",
     "adapter":"interpol","feed":{"url":")" +
         url + R"(","interval_s":1,"notice_types":["red","yellow"],"page_size":2}})";
}

class FeedAdmin : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    sim::partner_sim_options options = sim_options();
    recipient_ = std::make_unique<sim::partner_sim>(options);
    recipient_->start();
    options.format = "interpol";
    options.fixtures_dir = fixtures();
    feed_sim_ = std::make_unique<sim::partner_sim>(options);
    feed_sim_->start();
    other_sim_ = std::make_unique<sim::partner_sim>(options);  // a second copy of the service
    other_sim_->start();
    const std::string recipient_url =
        "https://127.0.0.1:" + std::to_string(recipient_->port()) + "/v1/messages";
    write_file(dir_ / "partners.json", R"({"partners":[)" + feed_entry(feed_partner, feed_url()) +
                                           ",\n" + feed_entry(clock_partner, feed_url()) + R"(,
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "endpoint":")" + recipient_url +
                                           R"(","agreements":["victim-data"],
       "purposes":["investigation","victim-protection","identity-verification"],
       "delivery":{"backoff_base_ms":20,"backoff_cap_ms":100}}]})");
    write_file(dir_ / "routing.json", R"({"rules":[
      {"id":"notices-to-thanhhoa","match":{"types":["person.wanted","victim.identification"],
       "senders":["interpol-feed","interpol-relay"]},"add":["vn-thanhhoa"]}]})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
    enable_admin(c);
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    other_sim_.reset();
    feed_sim_.reset();
    recipient_.reset();
  }

  std::string feed_url() const { return "https://127.0.0.1:" + std::to_string(feed_sim_->port()); }

  feed::feed_poller& poller() { return *gateway_->feeds(); }
  sim::notice_feed& notices() { return *feed_sim_->feed(); }

  bool wait(const std::function<bool(const feed::feed_counters&)>& predicate) {
    return poller().wait_until(predicate, patience);
  }

  /// Messages the gateway accepted from `partner` so far (since the log began).
  std::size_t accepted_from(const std::string& partner) {
    return lines_of(log_text(), "message.accepted", partner);
  }

  /// Both feeds sent every notice once and the recipient has them.
  void first_sweeps_delivered() {
    ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 2 && c.sent >= 2 * all_notices; }))
        << log_text();
    ASSERT_TRUE(recipient_->wait_until(
        [](const sim::sim_stats& s) { return s.unique_ids >= 2 * all_notices; }, patience));
    ASSERT_EQ(accepted_from(feed_partner), all_notices);
  }

  /// A notice changes, then waits until the clock feed has sent its new content and swept twice
  /// more: a feed still polling would have sent it too by then (both sweep every second).
  void change_a_notice_and_let_the_clock_feed_sweep() {
    const auto clock_sent = accepted_from(clock_partner);
    notices().change("2026/10001");
    ASSERT_TRUE(eventually([&] { return accepted_from(clock_partner) > clock_sent; }))
        << log_text();
    const auto sweeps = lines_of(log_text(), "feed.sweep_completed", clock_partner);
    ASSERT_TRUE(eventually([&] {
      return lines_of(log_text(), "feed.sweep_completed", clock_partner) >= sweeps + 2;
    })) << log_text();
  }

  void disable_feed() {
    auto r = admin(admin_client("alice"), "POST",
                   std::string("/admin/v1/partners/") + feed_partner + "/disable",
                   R"({"reason":"bad-notices"})");
    ASSERT_EQ(r.status, 200) << r.body;
  }

  std::unique_ptr<sim::partner_sim> recipient_;
  std::unique_ptr<sim::partner_sim> feed_sim_;
  std::unique_ptr<sim::partner_sim> other_sim_;
};

TEST_F(FeedAdmin, DisablingTheFeedPartnerStopsItsNotices) {
  ASSERT_NO_FATAL_FAILURE(first_sweeps_delivered());
  disable_feed();
  ASSERT_NO_FATAL_FAILURE(change_a_notice_and_let_the_clock_feed_sweep());
  EXPECT_EQ(accepted_from(feed_partner), all_notices) << "the disabled feed's notice was accepted\n"
                                                      << log_text();
  EXPECT_EQ(recipient_->stats().unique_ids, 2 * all_notices + 1)
      << "the recipient got something from the disabled feed";
  EXPECT_EQ(lines_of(log_text(), "feed.stopped", feed_partner), 1u);
}

TEST_F(FeedAdmin, ADisabledFeedStaysOffAfterARestart) {
  ASSERT_NO_FATAL_FAILURE(first_sweeps_delivered());
  disable_feed();
  restart();
  ASSERT_NO_FATAL_FAILURE(change_a_notice_and_let_the_clock_feed_sweep());
  // Only what was logged since the restart.
  const std::string log = log_text();
  const auto stopped = log.rfind("\"event\":\"gateway.stopped\"");
  ASSERT_NE(stopped, std::string::npos);
  const std::string since = log.substr(stopped);
  EXPECT_EQ(lines_of(since, "feed.started", feed_partner), 0u)
      << "the disabled feed was started again from the partners file\n"
      << since;
  EXPECT_EQ(lines_of(since, "feed.started", clock_partner), 1u);
  EXPECT_EQ(accepted_from(feed_partner), all_notices);
  EXPECT_EQ(poller().counters().refused, 0u) << "the disabled feed was polled";
}

TEST_F(FeedAdmin, EnablingTheFeedAgainResumesIt) {
  ASSERT_NO_FATAL_FAILURE(first_sweeps_delivered());
  disable_feed();
  ASSERT_NO_FATAL_FAILURE(change_a_notice_and_let_the_clock_feed_sweep());
  ASSERT_EQ(accepted_from(feed_partner), all_notices) << "polled while disabled\n" << log_text();

  auto r = admin(admin_client("alice"), "POST",
                 std::string("/admin/v1/partners/") + feed_partner + "/enable");
  ASSERT_EQ(r.status, 200) << r.body;
  // It resumes from its saved notices: the changed one is sent, nothing else again.
  ASSERT_TRUE(eventually([&] { return accepted_from(feed_partner) == all_notices + 1; }))
      << log_text();
  ASSERT_TRUE(recipient_->wait_until(
      [](const sim::sim_stats& s) { return s.unique_ids >= 2 * all_notices + 2; }, patience));
  const auto sweeps = lines_of(log_text(), "feed.sweep_completed", feed_partner);
  ASSERT_TRUE(eventually(
      [&] { return lines_of(log_text(), "feed.sweep_completed", feed_partner) >= sweeps + 1; }));
  EXPECT_EQ(accepted_from(feed_partner), all_notices + 1);
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
}

TEST_F(FeedAdmin, APutOfTheFeedSettingsTakesEffect) {
  ASSERT_NO_FATAL_FAILURE(first_sweeps_delivered());
  ASSERT_EQ(other_sim_->feed()->page_requests("red", 1), 0u);
  // The feed moves to another copy of the service (same notices).
  const std::string other_url = "https://127.0.0.1:" + std::to_string(other_sim_->port());
  auto r = admin(admin_client("alice"), "PUT", std::string("/admin/v1/partners/") + feed_partner,
                 feed_entry(feed_partner, other_url));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(eventually([&] { return other_sim_->feed()->page_requests("red", 1) >= 1; }))
      << "the feed still polls the url it started with\n"
      << log_text();
  ASSERT_TRUE(eventually(
      [&] { return other_sim_->feed()->detail_requests("2026/20418") >= 1; }));  // yellow, last
  // The same notices from the new place are known: nothing is sent again.
  const auto sweeps = lines_of(log_text(), "feed.sweep_completed", feed_partner);
  ASSERT_TRUE(eventually(
      [&] { return lines_of(log_text(), "feed.sweep_completed", feed_partner) >= sweeps + 1; }));
  EXPECT_EQ(accepted_from(feed_partner), all_notices);
}

// --- the accept path itself ---------------------------------------------------------------------

/// The partner API and a poller over a real SQLite store, without a listener: the trust state is
/// set by the test.
class FeedSenderRefused : public ::testing::Test {
 protected:
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

    sim::partner_sim_options sim_options;
    sim_options.cert = dir_ / "server.pem";
    sim_options.key = dir_ / "server.key";
    sim_options.ca = dir_ / "ca.pem";
    sim_options.format = "interpol";
    sim_options.fixtures_dir = fixtures();
    feed_sim_ = std::make_unique<sim::partner_sim>(sim_options);
    feed_sim_->start();

    write_file(
        dir_ / "partners.json",
        R"({"partners":[)" +
            feed_entry(feed_partner, "https://127.0.0.1:" + std::to_string(feed_sim_->port())) +
            R"(,
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "endpoint":"https://127.0.0.1:9/v1/messages","agreements":["victim-data"],
       "purposes":["investigation","victim-protection","identity-verification"]}]})");
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
    store_ =
        std::shared_ptr<store::message_store>(store::open_sqlite_store({.path = dir_ / "s.db"}));
    trust_ = std::make_shared<identity::trust_store>(state_with(true, false));
    api_ = std::make_shared<http::partner_api>(
        checker_, trust_, std::make_shared<live<pipeline::routing_rules>>(std::move(rules)),
        store_);
  }

  void TearDown() override {
    poller_.reset();
    if (store_) {
      store_->stop();
    }
    feed_sim_.reset();
    log::init({});
  }

  /// The files' state with the feed partner enabled or not, and held or not (a change of it this
  /// instance could not apply).
  std::shared_ptr<identity::trust_state> state_with(bool enabled, bool held) const {
    auto state = std::make_shared<identity::trust_state>();
    state->partners = *partners_;
    auto feed = *partners_->find(feed_partner);
    feed.enabled = enabled;
    EXPECT_EQ(state->partners.put(std::move(feed)), "");
    if (held) {
      state->unapplied_changes[{"partner", feed_partner}] = "invalid-partner";
    }
    return state;
  }

  /// The red fixture notice 2026/10001 as the feed's canonical message.
  std::string canonical_notice() const {
    const auto* format = adapters::find_adapter("interpol");
    auto decoded = format->decode(read_file(fixtures() / "red" / "2026-10001.json"),
                                  {.tables = &checker_->tables(), .sender = feed_partner});
    EXPECT_EQ(decoded.status, 0);
    return json::to_string(decoded.message);
  }

  http::response accept(const std::string& canonical) {
    std::promise<http::response> answer;
    api_->accept_canonical(feed_partner, canonical, std::nullopt,
                           [&](http::response r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  bool stored(const std::string& id) {
    std::promise<bool> found;
    store_->find(
        id, [&](std::optional<store::message_status> s, bool) { found.set_value(s.has_value()); });
    return found.get_future().get();
  }

  void start_poller() {
    feed::poller_options options;
    options.identity = {dir_ / "server.pem", dir_ / "server.key", {dir_ / "ca.pem"}, {}};
    options.request_timeout = std::chrono::seconds(10);
    options.backoff_base = std::chrono::milliseconds(20);
    options.backoff_cap = std::chrono::milliseconds(200);
    options.seed = 1;
    auto accept = [this](std::string sender, std::string canonical,
                         std::optional<std::vector<std::string>> only_to, feed::accept_done done) {
      api_->accept_canonical(std::move(sender), std::move(canonical), std::move(only_to),
                             [done = std::move(done)](http::response r) { done(r.status); });
    };
    poller_ = std::make_unique<feed::feed_poller>(
        options,
        std::vector<feed::feed_source>{{feed_partner, *partners_->find(feed_partner)->feed, false}},
        store_, &checker_->tables(), std::move(accept));
    poller_->start();
  }

  temp_dir dir_;
  std::unique_ptr<identity::cert_authority> ca_;
  std::unique_ptr<sim::partner_sim> feed_sim_;
  std::shared_ptr<identity::partner_registry> partners_;
  std::shared_ptr<pipeline::canonical_checker> checker_;
  std::shared_ptr<store::message_store> store_;
  std::shared_ptr<identity::trust_store> trust_;
  std::shared_ptr<http::partner_api> api_;
  std::unique_ptr<feed::feed_poller> poller_;
};

TEST_F(FeedSenderRefused, AcceptCanonicalFromADisabledOrHeldSenderIsRefused) {
  const std::string canonical = canonical_notice();
  rapidjson::Document doc;
  doc.Parse(canonical.c_str());
  const std::string id(json::get_string(doc, "id"));
  for (const auto& [enabled, held] : {std::pair{false, false}, std::pair{true, true}}) {
    SCOPED_TRACE(enabled ? "held" : "disabled");
    trust_->replace(state_with(enabled, held));
    const auto r = accept(canonical);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.body.find("urn:mxgw:problem:disabled-partner"), std::string::npos) << r.body;
    EXPECT_FALSE(stored(id)) << "a disabled sender's message was stored";
  }
  // Enabled and not held: the same message is accepted.
  trust_->replace(state_with(true, false));
  EXPECT_EQ(accept(canonical).status, 202);
  EXPECT_TRUE(stored(id));
}

TEST_F(FeedSenderRefused, ThePollerMarksNothingRefusedAsSentAndSendsItOnceAllowed) {
  trust_->replace(state_with(false, false));
  start_poller();
  ASSERT_TRUE(poller_->wait_until([](const auto& c) { return c.sweeps >= 1; }, patience));
  auto c = poller_->counters();
  EXPECT_EQ(c.sent, 0u);
  EXPECT_GE(c.refused, all_notices);
  EXPECT_NE(read_file(dir_ / "gateway.log").find("sender-refused"), std::string::npos);
  // Allowed again: the next sweep sends every notice, none was taken as sent.
  trust_->replace(state_with(true, false));
  ASSERT_TRUE(poller_->wait_until([](const auto& n) { return n.sent >= all_notices; }, patience));
}

}  // namespace
}  // namespace mxgw::test
