// The INTERPOL-style feed end to end: a real gateway polls the stand-in feed (partner-sim with
// notice fixtures) over mutual TLS and delivers to a stand-in recipient: paging, change detection,
// a failing page retried and resumed, withdrawals only on evidence that a notice is gone (never on
// a failing detail, nor on a list that may have passed the notice over), and no duplicates across
// a restart.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>
#include <sstream>
#include <thread>

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

// The red fixture notices in list order, three pages of two:
//   page 1: 2025/77021, 2026/10001; page 2: 2026/10002, 2026/10003; page 3: 2026/10004.

/// The reference the feed of a notice's content is known by (what its id is derived from): the
/// fixture notice `entity` of `type`, content as in the fixture file.
std::string content_reference(const std::string& type, const std::string& entity) {
  std::string file = entity;
  std::replace(file.begin(), file.end(), '/', '-');
  rapidjson::Document doc;
  const auto text = read_file(fixtures() / type / (file + ".json"));
  doc.Parse(text.c_str(), text.size());
  return entity + "#" + adapters::interpol::content_fingerprint(doc);
}

class Feed : public gateway_fixture {
 protected:
  /// Seconds between sweeps; a test that must not see a second sweep makes it long.
  virtual int interval_s() const { return 1; }
  /// Fault switches set before the gateway polls for the first time.
  virtual void before_start(sim::notice_feed&) {}
  /// The feed partners polling the stand-in service, each with the members added to its `feed`
  /// object (after a comma); their notices are routed alike.
  virtual std::vector<std::pair<std::string, std::string>> feed_partners() const {
    return {{"interpol-feed", ""}};
  }

  void configure(config::gateway_config& c) override {
    sim::partner_sim_options options = sim_options();
    recipient_ = std::make_unique<sim::partner_sim>(options);
    recipient_->start();
    options.format = "interpol";
    options.fixtures_dir = fixtures();
    feed_sim_ = std::make_unique<sim::partner_sim>(options);
    feed_sim_->start();
    before_start(*feed_sim_->feed());
    const std::string recipient_url =
        "https://127.0.0.1:" + std::to_string(recipient_->port()) + "/v1/messages";
    std::string feeds, senders;
    for (const auto& [id, members] : feed_partners()) {
      feeds += R"({"id":")" + id + R"(","name":"INTERPOL public notices, stand-in","country":"FR",
       "adapter":"interpol",
       "feed":{"url":"https://127.0.0.1:)" +
               std::to_string(feed_sim_->port()) + R"(","interval_s":)" +
               std::to_string(interval_s()) + R"(,"notice_types":["red","yellow"],"page_size":2)" +
               members + "}},\n";
      senders += (senders.empty() ? "\"" : ",\"") + id + "\"";
    }
    write_file(dir_ / "partners.json", R"({"partners":[)" + feeds + R"(
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
       "senders":[)" + senders + R"(]},"add":["vn-thanhhoa"]},
      {"id":"feed-status-to-ratanakiri","match":{"types":["case.status"],
       "senders":[)" + senders + R"(]},"add":["kh-ratanakiri"]}]})");
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

  /// Waits for `more` sweeps after those completed so far.
  bool more_sweeps(std::uint64_t more) {
    const auto sweeps = poller().counters().sweeps;
    return wait([&](const auto& c) { return c.sweeps >= sweeps + more; });
  }

  /// The id the gateway gives the fixture notice `entity` (content as in the fixture file) when
  /// the feed of `partner` sends it.
  std::string content_id(const std::string& type, const std::string& entity,
                         const std::string& partner = "interpol-feed") const {
    return derived_id(partner, content_reference(type, entity));
  }

  /// The id of the withdrawal of the fixture notice `entity` as first sent by `partner`'s feed.
  std::string withdrawal_of(const std::string& type, const std::string& entity,
                            const std::string& partner = "interpol-feed") const {
    return derived_id(partner, "withdrawn:" + content_id(type, entity, partner));
  }

  /// Everything is sent and delivered once.
  void first_sweep_delivered() {
    ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; })) << log_text();
    ASSERT_TRUE(recipient_has(all_notices));
    ASSERT_EQ(poller().counters().sent, all_notices);
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
  EXPECT_EQ(c.skipped, 0u);
  EXPECT_EQ(c.incomplete, 0u);  // every list complete: total = what was seen
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

TEST_F(Feed, ANoticeThatChangesBackToAnEarlierContentReachesItsRecipientsAgain) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  notices().set_revision("2026/10002", 1);  // content B
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == all_notices + 1; }));
  ASSERT_TRUE(recipient_has(all_notices + 1));
  // Back to the content first sent (A): news again, but A's id is a message the recipient has.
  notices().set_revision("2026/10002", 0);
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == all_notices + 2; })) << log_text();
  ASSERT_TRUE(recipient_has(all_notices + 2)) << log_text();
  const auto latest = recipient_->ids().back();
  EXPECT_NE(latest, content_id("red", "2026/10002"));
  const auto body = stored_body(latest);
  EXPECT_NE(body.find("\"ref\":\"2026/10002\""), std::string::npos) << body;
  EXPECT_EQ(body.find("revision 1"), std::string::npos) << body;  // A's content, not B's
  // Unchanged from then on: sent once.
  ASSERT_TRUE(more_sweeps(2));
  EXPECT_EQ(poller().counters().sent, all_notices + 2);
  EXPECT_EQ(stored_messages(), all_notices + 2);
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
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

// ---- a list page that keeps failing gives up its type for the sweep, not the feed ------------

struct bad_page {
  std::string name;
  std::function<void(sim::notice_feed&)> set;  // makes red page 2 bad (every request)
  std::string reason;                          // the reason code logged
};

void PrintTo(const bad_page& page, std::ostream* out) {
  *out << page.name;
}

class FeedListPageKeepsFailing : public Feed, public ::testing::WithParamInterface<bad_page> {};

TEST_P(FeedListPageKeepsFailing, TheTypeIsGivenUpForTheSweepAndTheOtherTypesAreRead) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  ASSERT_TRUE(more_sweeps(1));
  // Red page 2 goes bad for good, and a notice on page 3 leaves the list: the red list that
  // cannot be read past page 2 must not make it look gone.
  GetParam().set(notices());
  notices().remove("2026/10004");
  const auto red2 = notices().page_requests("red", 2);
  const auto yellow1 = notices().page_requests("yellow", 1);
  ASSERT_TRUE(wait([](const auto& c) { return c.lists_given_up >= 2; })) << log_text();
  ASSERT_TRUE(more_sweeps(1));
  const auto c = poller().counters();
  EXPECT_GE(c.incomplete, c.lists_given_up);
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.absent_unconfirmed, 0u);  // 2026/10004's detail not even asked
  EXPECT_EQ(c.sent, all_notices);
  // Tried max_list_attempts (3) times a sweep, and the yellow list read in every sweep.
  EXPECT_GE(notices().page_requests("red", 2), red2 + 6);
  EXPECT_LE(notices().page_requests("red", 2), red2 + 3 * (c.lists_given_up + 1));
  EXPECT_GE(notices().page_requests("yellow", 1), yellow1 + 2);
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10004")));
  EXPECT_EQ(stored_messages(), all_notices);
  const auto logs = log_text();
  EXPECT_NE(logs.find("feed.list_given_up"), std::string::npos) << logs;
  EXPECT_NE(logs.find("\"reason\":\"" + GetParam().reason + "\""), std::string::npos) << logs;
  EXPECT_NE(logs.find("red list page 2 failed 3 times"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("2026/1000"), std::string::npos);  // no entity id
  EXPECT_EQ(logs.find("2026-1000"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    BadPages, FeedListPageKeepsFailing,
    ::testing::Values(
        bad_page{"status500", [](sim::notice_feed& f) { f.fail_page("red", 2, 500); },
                 "list-status"},
        bad_page{"redirect302", [](sim::notice_feed& f) { f.answer_page("red", 2, 302, ""); },
                 "list-status"},
        bad_page{"notJson",
                 [](sim::notice_feed& f) {
                   f.answer_page("red", 2, 200, R"({"total":5,"_embedded":{"notices":[)");
                 },
                 "list-not-json"},
        bad_page{"noticesNotAList",
                 [](sim::notice_feed& f) {
                   f.answer_page("red", 2, 200,
                                 R"({"total":5,"_embedded":{"notices":{"entity_id":"x"}}})");
                 },
                 "list-not-a-list"},
        bad_page{"tooLarge",
                 [](sim::notice_feed& f) {
                   f.answer_page("red", 2, 200, std::string(4 * 1024 * 1024 + 1, ' '));
                 },
                 "too-large"},
        bad_page{"nextToAnotherHost",
                 [](sim::notice_feed& f) {
                   f.next_link("red", 2,
                               R"({"href":"https://elsewhere.example/notices/v1/red?page=3"})");
                 },
                 "list-foreign-next-link"},
        bad_page{"nextToAnotherType",
                 [](sim::notice_feed& f) {
                   f.next_link(
                       "red", 2,
                       R"({"href":"https://{host}/notices/v1/yellow?page=1&resultPerPage=2"})");
                 },
                 "list-foreign-next-link"}),
    [](const auto& bad) { return bad.param.name; });

// ---- `next` links: none, relative, repeating ----------------------------------------------------

class FeedWithHalNextLinks : public Feed {
 protected:
  void before_start(sim::notice_feed& feed) override {
    // Relative links (query only, then a relative path), and no further page said three ways.
    feed.next_link("red", 1, R"({"href":"?page=2&resultPerPage=2"})");
    feed.next_link("red", 2, R"({"href":"red?page=3&resultPerPage=2"})");
    feed.next_link("red", 3, "null");
    feed.next_link("yellow", 1, R"({"title":"no href"})");
  }
  int interval_s() const override { return 600; }
};

TEST_F(FeedWithHalNextLinks, RelativeLinksAreFollowedAndANullNextEndsTheList) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; })) << log_text();
  const auto c = poller().counters();
  EXPECT_EQ(c.errors, 0u) << log_text();
  EXPECT_EQ(c.incomplete, 0u);
  EXPECT_EQ(c.sent, all_notices);
  for (int page = 1; page <= 3; ++page) {
    EXPECT_EQ(notices().page_requests("red", page), 1u) << page;
  }
  EXPECT_EQ(notices().page_requests("red", 4), 0u);
  EXPECT_EQ(notices().page_requests("yellow", 1), 1u);
  ASSERT_TRUE(recipient_has(all_notices));
}

class FeedWithRepeatingNextLinks : public Feed {
 protected:
  void before_start(sim::notice_feed& feed) override {
    feed.next_link("red", 2, R"({"href":"https://{host}/notices/v1/red?page=1&resultPerPage=2"})");
    feed.next_link("yellow", 1, R"({"href":"/notices/v1/yellow?page=1&resultPerPage=2"})");
  }
  int interval_s() const override { return 600; }
};

TEST_F(FeedWithRepeatingNextLinks, APageReadTwiceEndsTheTypesPassIncomplete) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; })) << log_text();
  const auto c = poller().counters();
  EXPECT_EQ(notices().page_requests("red", 1), 1u);
  EXPECT_EQ(notices().page_requests("red", 2), 1u);
  EXPECT_EQ(notices().page_requests("red", 3), 0u);  // never linked
  EXPECT_EQ(notices().page_requests("yellow", 1), 1u);
  EXPECT_EQ(notices().detail_requests("2026/10001"), 1u);
  EXPECT_EQ(c.incomplete, 2u);         // red and yellow
  EXPECT_EQ(c.sent, all_notices - 1);  // 2026/10004 (page 3) was not reached
  EXPECT_EQ(c.withdrawn, 0u);
  const auto logs = log_text();
  EXPECT_NE(logs.find("list-next-link-repeats-page"), std::string::npos) << logs;
  EXPECT_NE(logs.find("red list page 2 links to a page already read"), std::string::npos) << logs;
}

// ---- a detail that says the notice is gone withdraws it ----------------------------------------

class FeedDetailGone : public Feed, public ::testing::WithParamInterface<int> {};

TEST_P(FeedDetailGone, AListedNoticeWhoseDetailIsGoneIsWithdrawnFromItsRecipientsOnly) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  notices().fail_detail("2026/10003", GetParam());
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));
  const std::string withdrawal = withdrawal_of("red", "2026/10003");
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(withdrawal));
  // The sender's view: Thanh Hoa (who had the notice) got it; Ratanakiri, proposed by a rule,
  // did not, and the feed (of another country) does not read why.
  const auto feed_partner = partner_client("interpol-feed");
  const auto r = get(feed_partner, "/v1/messages/" + withdrawal);
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document s;
  s.Parse(r.body.c_str());
  EXPECT_STREQ(s["type"].GetString(), "case.status");
  ASSERT_EQ(s["recipients"].Size(), 1u) << r.body;
  EXPECT_STREQ(s["recipients"][0]["partner"].GetString(), "vn-thanhhoa");
  EXPECT_EQ(r.body.find("kh-ratanakiri"), std::string::npos) << r.body;
  // Later sweeps do not withdraw it again.
  ASSERT_TRUE(more_sweeps(2));
  EXPECT_EQ(poller().counters().withdrawn, 1u);
  // Back in the feed, it is sent again under a new id (its recipients were told it was gone).
  notices().fail_detail("2026/10003", 0);
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == all_notices + 1; }));
  ASSERT_TRUE(recipient_has(all_notices + 2));
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
}

INSTANTIATE_TEST_SUITE_P(NotFoundOrGone, FeedDetailGone, ::testing::Values(404, 410),
                         [](const auto& status) {
                           return "status" + std::to_string(status.param);
                         });

// ---- any other failing detail is retried and withdraws nothing --------------------------------

class FeedDetailError : public Feed, public ::testing::WithParamInterface<int> {};

TEST_P(FeedDetailError, AListedNoticeWhoseDetailFailsIsKeptAndAskedAgain) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // 401/403: an expired credential; 500/502: a relay whose upstream is down; 503: come back later.
  notices().fail_detail("2026/10003", GetParam());
  const auto asked = notices().detail_requests("2026/10003");
  ASSERT_TRUE(wait([](const auto& c) { return c.skipped >= 2; })) << log_text();  // two sweeps
  ASSERT_TRUE(more_sweeps(1));
  auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_GE(c.incomplete, 2u);  // the red list passes that met it show nothing gone
  EXPECT_GE(c.errors, 2u);
  // Tried again (after a backoff) before it was passed over, and again in the next sweep.
  EXPECT_GE(notices().detail_requests("2026/10003"), asked + 6);
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10003")));
  EXPECT_EQ(stored_messages(), all_notices);
  // The other notices go on being read: the sweeps complete.
  EXPECT_GE(c.unchanged, 2 * (all_notices - 1));
  // When the detail answers again, nothing new is sent: it is the same notice.
  notices().fail_detail("2026/10003", 0);
  ASSERT_TRUE(more_sweeps(2));
  c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.sent, all_notices);
  EXPECT_EQ(stored_messages(), all_notices);
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
}

INSTANTIATE_TEST_SUITE_P(NotAboutTheNotice, FeedDetailError,
                         ::testing::Values(401, 403, 500, 502, 503), [](const auto& status) {
                           return "status" + std::to_string(status.param);
                         });

// ---- a notice missing from the list: its detail decides ----------------------------------------

TEST_F(Feed, ANoticeMissingFromTheListButStillPublishedIsKeptAndUpdated) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // The list passes it over (as when an earlier notice leaves mid-sweep), its detail answers 200,
  // with a change.
  notices().unlist("2026/10003");
  notices().change("2026/10003");
  ASSERT_TRUE(wait([](const auto& c) { return c.absent_kept >= 1; }));
  ASSERT_TRUE(wait([](const auto& c) { return c.sent == all_notices + 1; }));
  ASSERT_TRUE(more_sweeps(2));
  const auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.sent, all_notices + 1);  // the change, once
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10003")));
}

TEST_F(Feed, ANoticeMissingFromTheListWhoseDetailAnswers404IsWithdrawn) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  notices().unlist("2026/20418");
  notices().fail_detail("2026/20418", 404);
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(withdrawal_of("yellow", "2026/20418")));
  ASSERT_TRUE(more_sweeps(1));
  const auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 1u);
  EXPECT_EQ(c.absent_unconfirmed, 0u);  // 404 says gone at once
}

// Yellow notices (possible victims) are held for four-eyes release; red ones go at once.
class FeedWithHeldNotices : public Feed {
 protected:
  void configure(config::gateway_config& c) override {
    Feed::configure(c);
    auto routing = read_file(dir_ / "routing.json");
    routing.insert(routing.rfind('}'), R"(, "release": {"rules": [{"id": "victims-held",
        "match": {"types": ["victim.identification"]}}]})");
    write_file(dir_ / "routing.json", routing);
  }
};

TEST_F(FeedWithHeldNotices, ANoticeWhoseCopyWasNeverReleasedIsWithdrawnWithoutTellingAnyone) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; })) << log_text();
  ASSERT_TRUE(recipient_has(red_notices));
  notices().unlist("2026/20418");
  notices().fail_detail("2026/20418", 404);
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));
  ASSERT_TRUE(more_sweeps(1));
  // Thanh Hoa never got the notice (its copy is still held): a withdrawal would tell it that
  // the notice exists.
  EXPECT_FALSE(recipient_->has(withdrawal_of("yellow", "2026/20418")));
  EXPECT_EQ(recipient_->stats().unique_ids, red_notices);
  EXPECT_EQ(stored_messages(), all_notices) << "no withdrawal stored for no one";
}

TEST_F(Feed, ANoticeThatLeavesTheListIsWithdrawnWhenTwoSweepsFindItUnknown) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // Off the list; its detail answers 502 like the real service's unknown id (which a relay
  // whose upstream is down answers, too).
  const auto asked = notices().detail_requests("2026/20418");
  notices().remove("2026/20418");
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));
  auto c = poller().counters();
  EXPECT_EQ(c.absent_unconfirmed, 1u);
  EXPECT_GE(notices().detail_requests("2026/20418"), asked + 2);  // asked in two sweeps
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(withdrawal_of("yellow", "2026/20418")));
  ASSERT_TRUE(more_sweeps(1));
  EXPECT_EQ(poller().counters().withdrawn, 1u);
}

TEST_F(Feed, ANoticeBackOnTheListBetweenTwoUnknownAnswersIsNotWithdrawn) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  notices().remove("2026/20418");
  ASSERT_TRUE(wait([](const auto& c) { return c.absent_unconfirmed >= 1; }));
  notices().restore("2026/20418");
  ASSERT_TRUE(more_sweeps(2));  // listed again: the earlier answer is forgotten
  notices().remove("2026/20418");
  ASSERT_TRUE(wait([](const auto& c) { return c.absent_unconfirmed >= 2 || c.withdrawn >= 1; }));
  EXPECT_EQ(poller().counters().withdrawn, 0u);
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; }));  // the next sweep agrees
  EXPECT_TRUE(recipient_has(all_notices + 1));
}

TEST_F(Feed, ANoticeRemovedMidSweepDoesNotWithdrawTheOneThatShiftedOffItsPage) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // 2026/10001 (page 1) leaves the list just before page 2 is read: 2026/10002 moves up to page
  // 1, which was read already, so this sweep's list never shows it.
  notices().remove_before_page("red", 2, "2026/10001");
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 1; })) << log_text();
  ASSERT_TRUE(more_sweeps(1));
  const auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 1u);
  EXPECT_GE(c.incomplete, 1u);  // the pass that lost 2026/10002: total 5, 4 seen
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(withdrawal_of("red", "2026/10001")));
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10002")));
}

TEST_F(Feed, ANoticeFoundGoneJustBeforeARestartIsWithdrawnInTheSameSweep) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  ASSERT_TRUE(more_sweeps(1));
  // 2026/10002 leaves (its detail answers 502); 2026/10004 is passed over by the list and its
  // detail, asked after 2026/10002's, answers late: the window in which to restart.
  const auto asked = notices().detail_requests("2026/10004");
  notices().remove("2026/10002");
  notices().unlist("2026/10004");
  notices().delay_detail("2026/10004", 2000);
  ASSERT_TRUE(wait([](const auto& c) { return c.absent_unconfirmed >= 1 && c.absent_kept >= 1; }));
  // The next sweep's request for 2026/10004 comes after it confirmed 2026/10002 gone (a second
  // 502) and saved that; the sweep's list of notices found gone is not saved yet.
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (notices().detail_requests("2026/10004") < asked + 2 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(notices().detail_requests("2026/10004"), asked + 2);
  ASSERT_EQ(poller().counters().withdrawn, 0u);
  restart();
  // The restarted poller reads the last red page again and withdraws it in this same sweep.
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; })) << log_text();
  EXPECT_EQ(poller().counters().withdrawn, 1u) << log_text();
  notices().delay_detail("2026/10004", 0);
  ASSERT_TRUE(recipient_has(all_notices + 1));
  EXPECT_TRUE(recipient_->has(withdrawal_of("red", "2026/10002")));
}

// ---- `total` above what the list reaches -------------------------------------------------------

TEST_F(Feed, AListWhoseTotalExceedsWhatWasSeenWithdrawsNothingByAbsence) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // Like the real service past the 160th result: the red pages stop after 4 notices, `total`
  // still says 5.
  notices().limit_reach(4);
  ASSERT_TRUE(more_sweeps(2));
  // Now the notice no page reaches is even gone; the list cannot show it, so it is not asked.
  notices().fail_detail("2026/10004", 404);
  const auto asked = notices().detail_requests("2026/10004");
  const auto before = poller().counters();
  ASSERT_TRUE(more_sweeps(2));
  const auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_GE(c.incomplete, before.incomplete + 2);  // every red pass
  EXPECT_EQ(notices().detail_requests("2026/10004"), asked);
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10004")));
  // One warning per red pass, with counts only.
  const auto logs = log_text();
  EXPECT_NE(logs.find("list-total-exceeds-seen"), std::string::npos);
  EXPECT_NE(logs.find("red list: total 5, 4 seen"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("2026/1000"), std::string::npos);  // no entity id
  EXPECT_EQ(logs.find("2026-1000"), std::string::npos);
}

// ---- a malformed list item
// -----------------------------------------------------------------------

class FeedWithMalformedEntityId : public Feed {
 protected:
  void before_start(sim::notice_feed& feed) override { feed.malform_listed_id("2026/10003"); }
  int interval_s() const override { return 600; }
};

TEST_F(FeedWithMalformedEntityId, IsPassedOverAndTheOtherNoticesAreSent) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 1; })) << log_text();
  const auto c = poller().counters();
  EXPECT_EQ(c.sent, all_notices - 1);
  EXPECT_EQ(c.skipped, 1u);
  EXPECT_EQ(c.incomplete, 1u);  // the red list
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(notices().page_requests("red", 2), 1u);  // not retried
  ASSERT_TRUE(recipient_has(all_notices - 1));
  EXPECT_TRUE(recipient_->has(content_id("red", "2026/10002")));  // its neighbour on the page
  EXPECT_TRUE(recipient_->has(content_id("red", "2026/10004")));  // the page after
  const auto logs = log_text();
  EXPECT_NE(logs.find("list-bad-entity-id"), std::string::npos);
  EXPECT_EQ(logs.find("1O0O3"), std::string::npos);  // the item's content is not logged
}

TEST_F(Feed, AMalformedEntityIdOfASentNoticeDoesNotWithdrawIt) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  notices().malform_listed_id("2026/10003");
  ASSERT_TRUE(wait([](const auto& c) { return c.skipped >= 1; }));
  // What an absence check would find (set once no list shows the notice's id any more).
  notices().fail_detail("2026/10003", 404);
  ASSERT_TRUE(wait([](const auto& c) { return c.skipped >= 3; }));
  ASSERT_TRUE(more_sweeps(1));
  const auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_GE(c.incomplete, 3u);
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10003")));
}

// ---- a mass disappearance is held, not withdrawn ------------------------------------------------

class FeedWithWithdrawalCap : public Feed {
 protected:
  void configure(config::gateway_config& c) override {
    Feed::configure(c);
    c.feed.max_withdrawals_per_sweep = 2;
    enable_admin(c);
  }

  std::string metrics_text() { return admin(admin_client(), "GET", "/metrics").body; }

  /// Returns just after a sweep has completed, the next one about a second away: faults set now
  /// are all met by the same sweep.
  void between_sweeps() { ASSERT_TRUE(more_sweeps(1)); }

  /// Every red and yellow notice's withdrawal, none of which the recipient may have.
  bool recipient_has_any_withdrawal() {
    for (const auto& [type, entity] :
         std::vector<std::pair<std::string, std::string>>{{"red", "2025/77021"},
                                                          {"red", "2026/10001"},
                                                          {"red", "2026/10002"},
                                                          {"red", "2026/10003"},
                                                          {"red", "2026/10004"},
                                                          {"yellow", "2026/20417"},
                                                          {"yellow", "2026/20418"}}) {
      if (recipient_->has(withdrawal_of(type, entity))) {
        return true;
      }
    }
    return false;
  }
};

TEST_F(FeedWithWithdrawalCap, AMassDisappearanceWithdrawsNoneAndNothingOnceTheRelayIsHealthy) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // A relay answering 404 for three details (two red, one yellow): more than the cap of 2.
  const std::vector<std::string> gone{"2026/10001", "2026/10003", "2026/20418"};
  ASSERT_NO_FATAL_FAILURE(between_sweeps());
  for (const auto& entity : gone) {
    notices().fail_detail(entity, 404);
  }
  // Held, and checked again (and held again) in the next sweep.
  ASSERT_TRUE(wait([](const auto& c) { return c.holds >= 2; })) << log_text();
  auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.withdrawals_held, 3 * c.holds);
  EXPECT_FALSE(recipient_has_any_withdrawal());
  EXPECT_EQ(stored_messages(), all_notices);
  // An error event with the counts, no entity ids.
  auto logs = log_text();
  EXPECT_NE(logs.find("feed.withdrawals_held"), std::string::npos) << logs;
  EXPECT_NE(logs.find("found 3 notices gone (red 2, yellow 1), more than "
                      "feed.max_withdrawals_per_sweep 2"),
            std::string::npos)
      << logs;
  for (const auto& id : {"2026/1000", "2026-1000", "2026/2041", "2026-2041"}) {
    EXPECT_EQ(logs.find(id), std::string::npos) << id;
  }
  // The metric, per feed partner.
  const auto text = metrics_text();
  EXPECT_NE(text.find("mxgw_feed_withdrawal_holds_total{partner=\"interpol-feed\"} "),
            std::string::npos)
      << text;

  // The relay is healthy again: the notices answer 200, unchanged. Nothing is withdrawn, nothing
  // sent again, nothing held any more.
  for (const auto& entity : gone) {
    notices().fail_detail(entity, 0);
  }
  ASSERT_TRUE(more_sweeps(2));  // the sweep under way may still have met the 404s
  const auto healed = poller().counters();
  ASSERT_TRUE(more_sweeps(2));
  c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.holds, healed.holds);
  EXPECT_EQ(c.sent, all_notices);
  EXPECT_FALSE(recipient_has_any_withdrawal());
  EXPECT_EQ(stored_messages(), all_notices);
  EXPECT_EQ(recipient_->stats().duplicates, 0u);
}

TEST_F(FeedWithWithdrawalCap, UpToTheCapNoticesAreWithdrawnAsBeforeAndMoreAreHeld) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // Two gone in one sweep (one listed red whose detail answers 410, one yellow missing from the
  // list whose detail answers 404): as many as the cap, both withdrawn.
  ASSERT_NO_FATAL_FAILURE(between_sweeps());
  notices().fail_detail("2026/10003", 410);
  notices().unlist("2026/20418");
  notices().fail_detail("2026/20418", 404);
  ASSERT_TRUE(wait([](const auto& c) { return c.withdrawn >= 2; })) << log_text();
  ASSERT_TRUE(recipient_has(all_notices + 2));
  EXPECT_TRUE(recipient_->has(withdrawal_of("red", "2026/10003")));
  EXPECT_TRUE(recipient_->has(withdrawal_of("yellow", "2026/20418")));
  ASSERT_TRUE(more_sweeps(1));
  auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 2u);
  EXPECT_EQ(c.holds, 0u);
  // Then three more at once: held.
  ASSERT_NO_FATAL_FAILURE(between_sweeps());
  for (const auto& entity : {"2025/77021", "2026/10001", "2026/10004"}) {
    notices().fail_detail(entity, 404);
  }
  ASSERT_TRUE(wait([](const auto& now) { return now.holds >= 1; })) << log_text();
  ASSERT_TRUE(more_sweeps(1));
  c = poller().counters();
  EXPECT_EQ(c.withdrawn, 2u);
  EXPECT_FALSE(recipient_->has(withdrawal_of("red", "2026/10001")));
  EXPECT_NE(log_text().find("found 3 notices gone (red 3), more than"), std::string::npos);
}

TEST_F(FeedWithWithdrawalCap, NoticesLeavingTheListCountTooAndStayHeldUntilTheyAreBack) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  // Off the list, their details answering 502 (the service's unknown id, or a relay whose
  // upstream is down): the second sweep would withdraw all three.
  const std::vector<std::string> removed{"2026/10002", "2026/10004", "2026/20418"};
  ASSERT_NO_FATAL_FAILURE(between_sweeps());
  for (const auto& entity : removed) {
    notices().remove(entity);
  }
  ASSERT_TRUE(wait([](const auto& c) { return c.holds >= 2; })) << log_text();
  auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.absent_unconfirmed, 3u);  // once; each later sweep finds the same again
  EXPECT_FALSE(recipient_has_any_withdrawal());
  // Back on the list: kept, nothing withdrawn, nothing sent again.
  for (const auto& entity : removed) {
    notices().restore(entity);
  }
  ASSERT_TRUE(more_sweeps(2));
  const auto back = poller().counters();
  ASSERT_TRUE(more_sweeps(2));
  c = poller().counters();
  EXPECT_EQ(c.withdrawn, 0u);
  EXPECT_EQ(c.holds, back.holds);
  EXPECT_EQ(c.sent, all_notices);
  EXPECT_FALSE(recipient_has_any_withdrawal());
}

// ---- each feed its own cap ---------------------------------------------------------------------

/// Two feeds on the same stand-in service, started together and sweeping every second:
/// interpol-feed under the gateway-wide cap of 2, interpol-regional with its own cap of 3.
class FeedsWithTheirOwnWithdrawalCaps : public FeedWithWithdrawalCap {
 protected:
  std::vector<std::pair<std::string, std::string>> feed_partners() const override {
    return {{"interpol-feed", ""}, {"interpol-regional", R"(,"max_withdrawals_per_sweep":3)"}};
  }

  /// Returns just after both feeds have completed a sweep (the counters count both), the next
  /// about a second away: faults set now are all met by the next sweep of each.
  void between_rounds() {
    const auto sweeps = poller().counters().sweeps;
    ASSERT_TRUE(wait([&](const auto& c) { return c.sweeps >= sweeps + 2 && c.sweeps % 2 == 0; }))
        << log_text();
  }

  /// True when a `feed.withdrawals_held` line of `partner`'s feed says `words`.
  bool held_line(const std::string& partner, const std::string& words) {
    std::istringstream lines(log_text());
    for (std::string line; std::getline(lines, line);) {
      if (line.find(R"("event":"feed.withdrawals_held")") != std::string::npos &&
          line.find(R"("partner":")" + partner + '"') != std::string::npos &&
          line.find(words) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  std::size_t regional_withdrawals_delivered(const std::vector<std::string>& entities) {
    std::size_t n = 0;
    for (const auto& entity : entities) {
      n += recipient_->has(withdrawal_of(entity.starts_with("2026/2") ? "yellow" : "red", entity,
                                         "interpol-regional"))
               ? 1
               : 0;
    }
    return n;
  }
};

TEST_F(FeedsWithTheirOwnWithdrawalCaps, OneSweepOfEachHoldsOrWithdrawsByItsOwnCap) {
  ASSERT_TRUE(wait([](const auto& c) { return c.sweeps >= 2 && c.sent == 2 * all_notices; }))
      << log_text();
  ASSERT_TRUE(recipient_has(2 * all_notices));
  // Three gone (two red, one yellow): more than the gateway-wide 2, not more than the regional 3.
  const std::vector<std::string> gone{"2026/10001", "2026/10003", "2026/20418"};
  ASSERT_NO_FATAL_FAILURE(between_rounds());
  for (const auto& entity : gone) {
    notices().fail_detail(entity, 404);
  }
  ASSERT_TRUE(wait([](const auto& c) { return c.holds >= 1 && c.withdrawn >= 3; })) << log_text();
  ASSERT_NO_FATAL_FAILURE(between_rounds());
  auto c = poller().counters();
  EXPECT_EQ(c.withdrawn, 3u);                  // the regional feed's three, in one sweep
  EXPECT_EQ(c.withdrawals_held, 3 * c.holds);  // interpol-feed's three, every sweep
  ASSERT_TRUE(recipient_has(2 * all_notices + 3));
  EXPECT_EQ(regional_withdrawals_delivered(gone), 3u);
  EXPECT_FALSE(recipient_has_any_withdrawal());  // none of interpol-feed's
  EXPECT_TRUE(held_line("interpol-feed",
                        "found 3 notices gone (red 2, yellow 1), more than "
                        "feed.max_withdrawals_per_sweep 2 (gateway-wide)"))
      << log_text();
  EXPECT_FALSE(held_line("interpol-regional", ""));
  auto text = metrics_text();
  EXPECT_NE(text.find("mxgw_feed_withdrawal_holds_total{partner=\"interpol-feed\"} "),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("mxgw_feed_withdrawal_holds_total{partner=\"interpol-regional\"}"),
            std::string::npos)
      << text;

  // Four more gone: more than the regional feed's own cap, which now holds them, and says so.
  const std::vector<std::string> more{"2025/77021", "2026/10002", "2026/10004", "2026/20417"};
  ASSERT_NO_FATAL_FAILURE(between_rounds());
  for (const auto& entity : more) {
    notices().fail_detail(entity, 404);
  }
  ASSERT_TRUE(wait([&](const auto&) {
    return held_line("interpol-regional", "found 4 notices gone (red 3, yellow 1)");
  })) << log_text();
  ASSERT_NO_FATAL_FAILURE(between_rounds());
  c = poller().counters();
  EXPECT_EQ(c.withdrawn, 3u);
  EXPECT_EQ(regional_withdrawals_delivered(more), 0u);
  EXPECT_FALSE(recipient_has_any_withdrawal());
  EXPECT_TRUE(held_line("interpol-regional",
                        "found 4 notices gone (red 3, yellow 1), more than "
                        "max_withdrawals_per_sweep 3 set on this partner's feed"))
      << log_text();
  EXPECT_TRUE(held_line("interpol-feed",
                        "found 7 notices gone (red 5, yellow 2), more than "
                        "feed.max_withdrawals_per_sweep 2 (gateway-wide)"));
  text = metrics_text();
  EXPECT_NE(text.find("mxgw_feed_withdrawal_holds_total{partner=\"interpol-regional\"} "),
            std::string::npos)
      << text;
  for (const auto& id : {"2026/1000", "2026-1000", "2026/2041", "2026-2041", "2025/7702"}) {
    EXPECT_EQ(log_text().find(id), std::string::npos) << id;
  }
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

// The ids the gateway derives for a notice's messages can be worked out by anyone who knows the
// notice, and the store keeps one id space for all senders. A partner that posts its own message
// under the id of a notice's future withdrawal must not make the poller believe the withdrawal
// was sent: it raises the alarm instead, at every sweep, and sends nothing under that id.
TEST_F(Feed, AWithdrawalWhoseIdAnotherPartnerTookIsNotCountedAsSent) {
  ASSERT_NO_FATAL_FAILURE(first_sweep_delivered());
  const std::string taken = withdrawal_of("yellow", "2026/20418");
  std::string body = example("hotline.tip", taken);
  body =
      std::regex_replace(body, std::regex(R"("sender": "[a-z-]+")"), "\"sender\": \"vn-thanhhoa\"");
  body = std::regex_replace(body, std::regex(R"("recipients": \[[^\]]*\])"),
                            "\"recipients\": [\"vn-thanhhoa\"]");
  ASSERT_EQ(post(partner_client("vn-thanhhoa"), body).status, 202);

  notices().unlist("2026/20418");
  notices().fail_detail("2026/20418", 404);
  ASSERT_TRUE(wait([](const auto& c) { return c.refused >= 1; })) << log_text();
  ASSERT_TRUE(more_sweeps(1));
  ASSERT_TRUE(wait([](const auto& c) { return c.refused >= 2; }))
      << "the alarm was not raised again at the next sweep";
  EXPECT_EQ(poller().counters().withdrawn, 0u) << "a withdrawal nobody received counted as sent";
  const std::string log = log_text();
  EXPECT_NE(log.find("feed.notice_id_taken"), std::string::npos) << log;
  EXPECT_NE(log.find("id-taken-by-another-sender"), std::string::npos);
}

}  // namespace
}  // namespace mxgw::test
