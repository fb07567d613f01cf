// The INTERPOL-style feed end to end: a real gateway polls the stand-in feed (partner-sim with
// notice fixtures) over mutual TLS and delivers to a stand-in recipient: paging, change detection,
// a failing page retried and resumed, withdrawals, and no duplicates across a restart.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "adapters/common/dates.hpp"
#include "adapters/interpol/interpol.hpp"
#include "gateway/feed/feed_poller.hpp"
#include "gateway/sim/notice_feed.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(30);
constexpr std::size_t red_notices = 5;  // 3 pages of 2
constexpr std::size_t yellow_notices = 2;
constexpr std::size_t all_notices = red_notices + yellow_notices;

std::filesystem::path fixtures() {
  return source_dir() / "config" / "examples" / "interpol";
}

/// The id the gateway gives the fixture notice `entity` (content as in the fixture file).
std::string content_id(const std::string& type, const std::string& entity) {
  std::string file = entity;
  std::replace(file.begin(), file.end(), '/', '-');
  rapidjson::Document doc;
  const auto text = read_file(fixtures() / type / (file + ".json"));
  doc.Parse(text.c_str(), text.size());
  return adapters::message_uuid("interpol-feed",
                                entity + "#" + adapters::interpol::content_fingerprint(doc));
}

class Feed : public gateway_fixture {
 protected:
  /// Seconds between sweeps; a test that must not see a second sweep makes it long.
  virtual int interval_s() const { return 1; }
  /// Fault switches set before the gateway polls for the first time.
  virtual void before_start(sim::notice_feed&) {}

  void configure(config::gateway_config& c) override {
    sim::partner_sim_options options;
    options.cert = dir_ / "server.pem";
    options.key = dir_ / "server.key";
    options.ca = dir_ / "ca.pem";
    recipient_ = std::make_unique<sim::partner_sim>(options);
    recipient_->start();
    options.format = "interpol";
    options.fixtures_dir = fixtures();
    feed_sim_ = std::make_unique<sim::partner_sim>(options);
    feed_sim_->start();
    before_start(*feed_sim_->feed());
    const std::string recipient_url =
        "https://127.0.0.1:" + std::to_string(recipient_->port()) + "/v1/messages";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"interpol-feed","name":"INTERPOL public notices, stand-in","country":"FR",
       "adapter":"interpol",
       "feed":{"url":"https://127.0.0.1:)" +
                                           std::to_string(feed_sim_->port()) +
                                           R"(","interval_s":)" + std::to_string(interval_s()) +
                                           R"(,"notice_types":["red","yellow"],"page_size":2}},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "endpoint":")" + recipient_url + R"(","agreements":["victim-data"],
       "purposes":["investigation","victim-protection","identity-verification"],
       "delivery":{"backoff_base_ms":20,"backoff_cap_ms":100}},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "endpoint":")" + recipient_url + R"("}]})");
    // Notices go to Thanh Hoa; a rule would also give every feed case.status to Ratanakiri,
    // which never had the notices: a withdrawal must still reach only Thanh Hoa.
    write_file(dir_ / "routing.json", R"({"rules":[
      {"id":"notices-to-thanhhoa","match":{"types":["person.wanted","victim.identification"],
       "senders":["interpol-feed"]},"add":["vn-thanhhoa"]},
      {"id":"feed-status-to-ratanakiri","match":{"types":["case.status"],
       "senders":["interpol-feed"]},"add":["kh-ratanakiri"]}]})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    feed_sim_.reset();
    recipient_.reset();
  }

  feed::feed_poller& poller() { return *gateway_->feeds(); }
  sim::notice_feed& notices() { return *feed_sim_->feed(); }

  bool wait(const std::function<bool(const feed::feed_counters&)>& predicate) {
    return poller().wait_until(predicate, patience);
  }

  bool recipient_has(std::size_t unique) {
    return recipient_->wait_until([&](const sim::sim_stats& s) { return s.unique_ids >= unique; },
                                  patience);
  }

  std::unique_ptr<sim::partner_sim> recipient_, feed_sim_;
};

TEST_F(Feed, PagesThroughEveryListAndSendsUnchangedNoticesOnce) {
  ASSERT_NE(gateway_->feeds(), nullptr);
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 2; })) << log_text();
  const auto c = poller().counters();
  EXPECT_EQ(c.sent, all_notices);
  EXPECT_GE(c.unchanged, all_notices);  // the second sweep found nothing new
  EXPECT_EQ(c.refused, 0u);
  EXPECT_EQ(c.withdrawn, 0u);
  for (int page = 1; page <= 3; ++page) {
    EXPECT_GE(notices().page_requests("red", page), 2u) << page;
  }
  EXPECT_EQ(notices().page_requests("red", 4), 0u);  // no `next` after the last page
  ASSERT_TRUE(recipient_has(all_notices));
  EXPECT_EQ(stored_messages(), all_notices);
  EXPECT_TRUE(recipient_->has(content_id("red", "2026/10001")));
  EXPECT_TRUE(recipient_->has(content_id("yellow", "2026/20417")));
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
}

TEST_F(Feed, AChangedNoticeIsSentAgainUnderANewId) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; }));
  ASSERT_EQ(poller().counters().sent, all_notices);
  notices().change("2026/10002");
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == all_notices + 1; }));
  const auto sweeps = poller().counters().sweeps;
  ASSERT_TRUE(wait([&](const auto& c) { return c.sweeps >= sweeps + 1; }));
  EXPECT_EQ(poller().counters().sent, all_notices + 1);  // the change is sent once
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(content_id("red", "2026/10002")));  // the first version
  EXPECT_EQ(stored_messages(), all_notices + 1);
}

class FeedWithFailingPage : public Feed {
 protected:
  void before_start(sim::notice_feed& feed) override { feed.fail_page_once("red", 2, 503); }
  int interval_s() const override { return 600; }
};

TEST_F(FeedWithFailingPage, RetriesTheFailedPageAndResumesThere) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; }));
  const auto c = poller().counters();
  EXPECT_GE(c.errors, 1u);
  EXPECT_EQ(c.sent, all_notices);
  EXPECT_EQ(notices().page_requests("red", 1), 1u);  // not read again: resumed at page 2
  EXPECT_EQ(notices().page_requests("red", 2), 2u);  // failed once, then read
  EXPECT_EQ(notices().page_requests("red", 3), 1u);
  ASSERT_TRUE(recipient_has(all_notices));
}

TEST_F(Feed, ANoticeWhoseDetailFailsIsWithdrawnFromItsRecipientsOnly) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; }));
  ASSERT_TRUE(recipient_has(all_notices));
  const std::string original = content_id("red", "2026/10003");
  notices().fail_detail("2026/10003", 502);
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));
  const std::string withdrawal = adapters::message_uuid("interpol-feed", "withdrawn:" + original);
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(withdrawal));
  // The sender's view: Thanh Hoa (who had the notice) got it; Ratanakiri, proposed by a rule,
  // did not.
  const auto feed_partner = partner_client("interpol-feed");
  const auto r = get(feed_partner, "/v1/messages/" + withdrawal);
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document s;
  s.Parse(r.body.c_str());
  EXPECT_STREQ(s["type"].GetString(), "case.status");
  ASSERT_EQ(s["recipients"].Size(), 1u) << r.body;
  EXPECT_STREQ(s["recipients"][0]["partner"].GetString(), "vn-thanhhoa");
  bool ratanakiri_excluded = false;
  for (const auto& e : s["excluded"].GetArray()) {
    ratanakiri_excluded =
        ratanakiri_excluded || (std::string(e["partner"].GetString()) == "kh-ratanakiri" &&
                                std::string(e["reason"].GetString()) == "not-an-earlier-recipient");
  }
  EXPECT_TRUE(ratanakiri_excluded) << r.body;
  // Later sweeps do not withdraw it again.
  const auto sweeps = poller().counters().sweeps;
  ASSERT_TRUE(wait([&](const auto& c) { return c.sweeps >= sweeps + 2; }));
  EXPECT_EQ(poller().counters().withdrawn, 1u);
  // Back in the feed, it is sent again under a new id (its recipients were told it was gone).
  notices().fail_detail("2026/10003", 0);
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == all_notices + 1; }));
  ASSERT_TRUE(recipient_has(all_notices + 2));
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
}

TEST_F(Feed, ANoticeThatLeavesTheListIsWithdrawn) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; }));
  ASSERT_TRUE(recipient_has(all_notices));
  notices().remove("2026/20418");
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));
  EXPECT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(
      adapters::message_uuid("interpol-feed", "withdrawn:" + content_id("yellow", "2026/20418"))));
  EXPECT_EQ(poller().counters().withdrawn, 1u);
}

class FeedRestart : public Feed {
 protected:
  void before_start(sim::notice_feed& feed) override { feed.fail_page("red", 2, 503); }
  int interval_s() const override { return 600; }
};

TEST_F(FeedRestart, AGatewayRestartMidFeedResumesAtThePageAndSendsNothingTwice) {
  // Page 1 (two notices) is done; page 2 keeps failing.
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == 2 && c.errors >= 1; }));
  restart();
  // The new poller resumes at page 2 (page 1 is not read again) once the feed recovers.
  ASSERT_TRUE(wait([](const auto& c) { return c.errors >= 1; }));
  notices().fail_page("red", 2, 0);
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; }));
  const auto c = poller().counters();
  EXPECT_EQ(c.sent, all_notices - 2);
  EXPECT_EQ(notices().page_requests("red", 1), 1u);
  ASSERT_TRUE(recipient_has(all_notices));
  EXPECT_EQ(stored_messages(), all_notices);
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
  // Restarted again after the sweep: everything is known, nothing is sent.
  restart();
  ASSERT_EQ(gateway_->feeds()->counters().sent, 0u);
  EXPECT_EQ(stored_messages(), all_notices);
}

}  // namespace
}  // namespace mxgw::test
