// The retention sweep over a real (encrypted) SQLite store: the configured periods decide what
// goes; metadata stays.
#include "gateway/store/retention.hpp"

#include <gtest/gtest.h>

#include <future>

#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::store {
namespace {

using namespace mxgw::store::test_helpers;
using namespace std::chrono_literals;

TEST(Retention, DeliveredBytesGoAfterTheirPeriodAndNotBefore) {
  test::temp_dir dir;
  auto ring = std::make_shared<key_ring>();
  ring->add({"k", {}});
  ring->set_active("k");
  sqlite_options options;
  options.path = dir / "store.db";
  std::shared_ptr<message_store> store = encrypt_at_rest(open_sqlite_store(options), ring);

  const std::string body = R"({"secret":"CANARY-RETENTION"})";
  message_record record{make_id(1), "kh-ratanakiri", "hotline.tip", "2026-11-22T04:38:47Z",
                        fingerprint(body), body};
  record.deliveries.push_back({"vn-gialai", "explicit", body, "[]"});
  std::promise<accept_result> accepted;
  store->accept(record, [&accepted](accept_result r) { accepted.set_value(r); });
  ASSERT_EQ(accepted.get_future().get().outcome, accept_outcome::stored);
  std::promise<std::vector<delivery_job>> claimed;
  store->claim_due("w", 1, 1min, {}, [&claimed](std::vector<delivery_job> jobs, bool) {
    claimed.set_value(std::move(jobs));
  });
  const std::vector<delivery_job> jobs = claimed.get_future().get();
  ASSERT_EQ(jobs.size(), 1U);
  std::promise<bool> reported;
  store->report({.message_id = record.id,
                 .recipient = "vn-gialai",
                 .owner = "w",
                 .result = attempt_result::delivered,
                 .next_attempt_at = {},
                 .error = {},
                 .receipt = "{}",
                 .audit = {},
                 .attempt = jobs[0].attempt},
                [&reported](bool ok) { reported.set_value(ok); });
  ASSERT_TRUE(reported.get_future().get());

  auto now = std::chrono::system_clock::now();
  retention_settings settings{.delivered_after = 24h * 30,
                              .dead_after = 24h * 90,
                              .interval = 3600s,
                              .actor = "gateway:test",
                              .clock = [&now] { return now; }};
  retention_sweeper sweeper(store, settings);  // its first sweep (at start) finds nothing due
  now += 24h * 29;
  auto [early, ok_early] = sweeper.sweep_now();
  EXPECT_TRUE(ok_early);
  EXPECT_EQ(early.payloads + early.bodies, 0U);
  now += 24h * 2;
  auto [due, ok_due] = sweeper.sweep_now();
  EXPECT_TRUE(ok_due);
  EXPECT_EQ(due.payloads, 1U);
  EXPECT_EQ(due.bodies, 1U);
  sweeper.stop();
  store->stop();

  raw_db db(dir / "store.db");
  EXPECT_EQ(db.text("SELECT length(body) FROM messages"), "0");
  EXPECT_EQ(db.text("SELECT length(payload) FROM deliveries"), "0");
  EXPECT_EQ(db.text("SELECT state FROM deliveries"), "delivered");
  EXPECT_EQ(db.text("SELECT purged_at IS NOT NULL FROM messages"), "1");
  EXPECT_EQ(db.text("SELECT count(*) FROM audit WHERE event = 'retention.purged'"), "1");
}

TEST(Retention, AnExpiredMessageGoesAtTheFirstSweepAfterItsEnd) {
  test::temp_dir dir;
  auto ring = std::make_shared<key_ring>();
  ring->add({"k", {}});
  ring->set_active("k");
  sqlite_options options;
  options.path = dir / "store.db";
  std::shared_ptr<message_store> store = encrypt_at_rest(open_sqlite_store(options), ring);

  auto now = std::chrono::system_clock::now();
  const std::string body = R"({"secret":"CANARY-EXPIRY"})";
  message_record record{
      make_id(1), "kh-ratanakiri", "hotline.tip", "2026-11-22T04:38:47Z", fingerprint(body), body};
  record.deliveries.push_back({"vn-gialai", "explicit", body, "[]"});
  record.deliveries.back().hold = "rule-four-eyes";  // held: never delivered, never due
  record.expires_at = now + 24h;
  std::promise<accept_result> accepted;
  store->accept(record, [&accepted](accept_result r) { accepted.set_value(r); });
  ASSERT_EQ(accepted.get_future().get().outcome, accept_outcome::stored);

  retention_settings settings{.delivered_after = 24h * 30,
                              .dead_after = 24h * 90,
                              .interval = 3600s,
                              .actor = "gateway:test",
                              .clock = [&now] { return now; }};
  retention_sweeper sweeper(store, settings);  // its first sweep (at start): not expired yet
  now += 23h;
  auto [early, ok_early] = sweeper.sweep_now();
  EXPECT_TRUE(ok_early);
  EXPECT_EQ(early.payloads + early.bodies + early.expired, 0U);
  now += 2h;
  auto [due, ok_due] = sweeper.sweep_now();
  EXPECT_TRUE(ok_due);
  EXPECT_EQ(due.payloads, 1U);
  EXPECT_EQ(due.bodies, 1U);
  EXPECT_EQ(due.expired, 2U);
  sweeper.stop();
  store->stop();

  raw_db db(dir / "store.db");
  EXPECT_EQ(db.text("SELECT length(body) FROM messages"), "0");
  EXPECT_EQ(db.text("SELECT length(payload) FROM deliveries"), "0");
  EXPECT_EQ(db.text("SELECT state FROM deliveries"), "expired");
  EXPECT_EQ(db.text("SELECT count(*) FROM audit WHERE event = 'retention.purged'"), "1");
}

}  // namespace
}  // namespace mxgw::store
