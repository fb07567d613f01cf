// handling.expires at the partner API: the source allows no processing after that day, so a
// message past it is refused and nothing is stored, except a resend of one stored before (the
// first answer again) and a withdrawal (it takes data back).
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sqlite3.h>

#include <future>
#include <string>

#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/pipeline/document_edit.hpp"

namespace mxgw::test {
namespace {

class Expiry : public gateway_fixture {
 protected:
  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
  }

  // The example `type` with `id` and handling.expires set to `day`.
  static std::string expiring(const std::string& type, const std::string& id,
                              const std::string& day) {
    rapidjson::Document doc;
    doc.Parse(example(type, id).c_str());
    set_json(doc, "/handling/expires", "\"" + day + "\"");
    return json::to_string(doc);
  }

  cli::client_tls gialai_;
};

TEST_F(Expiry, AMessagePastItsExpiryIsRefusedAndNothingIsStored) {
  const auto r = post(gialai_, expiring("victim.identification",
                                        "e0000000-0000-4000-8000-000000000001", "2020-01-01"));
  EXPECT_EQ(r.status, 422) << r.body;
  rapidjson::Document problem;
  problem.Parse(r.body.c_str());
  ASSERT_TRUE(problem.IsObject()) << r.body;
  EXPECT_EQ(json::get_string(problem, "type"), "urn:mxgw:problem:handling-expired");
  ASSERT_TRUE(problem.HasMember("errors") && problem["errors"].Size() == 1) << r.body;
  EXPECT_EQ(json::get_string(problem["errors"][0], "pointer"), "/handling/expires");
  EXPECT_EQ(stored_messages(), 0U);
  EXPECT_NE(log_text().find("\"reason\":\"handling-expired\""), std::string::npos);

  // Yesterday has ended too; today has not. Days of Gia Lai, a source in Viet Nam (UTC+7).
  const auto now = std::chrono::system_clock::now() + std::chrono::hours(7);
  const std::string yesterday = format_rfc3339_ms(now - std::chrono::hours(24)).substr(0, 10);
  const std::string today = format_rfc3339_ms(now).substr(0, 10);
  EXPECT_EQ(post(gialai_, expiring("hotline.tip", "e0000000-0000-4000-8000-000000000002",
                                   yesterday))
                .status,
            422);
  EXPECT_EQ(post(gialai_, expiring("hotline.tip", "e0000000-0000-4000-8000-000000000003", today))
                .status,
            202);
  EXPECT_EQ(stored_messages(), 1U);
}

TEST_F(Expiry, TheDayEndsAtMidnightInTheSendersCountry) {
  // Gia Lai is in Viet Nam: its 2030-01-01 ends at 17:00 UTC, not at midnight UTC.
  const std::string id = "e0000000-0000-4000-8000-000000000006";
  ASSERT_EQ(post(gialai_, expiring("hotline.tip", id, "2030-01-01")).status, 202);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(config_.store.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, ("SELECT expires_at FROM messages WHERE id = '" + id + "'").c_str(),
                         -1, &stmt, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(format_rfc3339_ms(std::chrono::system_clock::time_point(
                std::chrono::milliseconds(sqlite3_column_int64(stmt, 0)))),
            "2030-01-01T17:00:00.000Z");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(Expiry, AWithdrawalIsAcceptedWhateverItsExpirySays) {
  rapidjson::Document doc;
  doc.Parse(expiring("case.status", "e0000000-0000-4000-8000-000000000004", "2020-01-01").c_str());
  set_json(doc, "/body/status", R"("withdrawn")");
  const auto r = post(gialai_, json::to_string(doc));
  EXPECT_EQ(r.status, 202) << r.body;
}

TEST_F(Expiry, AResendOfAMessageStoredBeforeItExpiredGetsTheFirstAnswer) {
  const std::string id = "e0000000-0000-4000-8000-000000000005";
  const std::string body = expiring("victim.identification", id, "2026-01-31");
  // Stored while it was still valid: written into the gateway's store file beside it.
  {
    auto beside = store::open_sqlite_store({.path = config_.store.path});
    store::message_record record{id, "vn-gialai", "victim.identification",
                                 "2026-01-02T00:00:00Z", sha256_hex(body), body};
    std::promise<store::accept_result> accepted;
    beside->accept(record, [&](store::accept_result r) { accepted.set_value(r); });
    ASSERT_EQ(accepted.get_future().get().outcome, store::accept_outcome::stored);
    beside->stop();
  }
  const auto again = post(gialai_, body);
  EXPECT_EQ(again.status, 202) << again.body << " (the first answer again)";
  // Another body under that id is still a conflict, not an expiry.
  const auto other = post(gialai_, expiring("victim.identification", id, "2026-01-30"));
  EXPECT_EQ(other.status, 409) << other.body;
  EXPECT_EQ(stored_messages(), 1U);
}

}  // namespace
}  // namespace mxgw::test
