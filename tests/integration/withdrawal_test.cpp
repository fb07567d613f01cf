// A case.status "withdrawn" from the sender takes back the copies of the original that have not
// gone out yet, also when it came before the original; the same from another partner takes back
// nothing.
#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <map>
#include <regex>
#include <string>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class Withdrawal : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override {
    config.delivery.enabled = false;  // copies stay queued: what a withdrawal finds
    const std::string agreed =
        R"("agreements":["victim-data"],"purposes":["investigation","victim-protection"],)"
        R"("endpoint":"https://127.0.0.1:9/v1/messages")";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",)" + agreed + R"(},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison desk","country":"VN",)" + agreed + R"(},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)" + agreed + R"(}]})");
  }

  std::string state_of(const cli::client_tls& tls, const std::string& id,
                       const std::string& recipient) {
    const auto r = get(tls, "/v1/messages/" + id);
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    if (!doc.IsObject() || !doc.HasMember("recipients")) {
      return "(no status: " + std::to_string(r.status) + ")";
    }
    for (const auto& row : doc["recipients"].GetArray()) {
      if (recipient == row["partner"].GetString()) {
        return row["state"].GetString();
      }
    }
    return "(not a recipient)";
  }

  std::string status_message(const std::string& id, const std::string& sender,
                             const std::string& about) {
    std::string m = example("case.status", id);
    m = std::regex_replace(m, std::regex(R"("sender": "[a-z-]+")"), "\"sender\": \"" + sender + "\"");
    m = std::regex_replace(m, std::regex(R"("recipients": \[[^\]]*\])"),
                           R"("recipients": ["kh-ratanakiri"])");
    m = std::regex_replace(m, std::regex(R"("messageId": "[0-9a-f-]+")"),
                           "\"messageId\": \"" + about + "\"");
    return std::regex_replace(m, std::regex(R"("status": "repatriated")"), R"("status": "withdrawn")");
  }
};

TEST_F(Withdrawal, TheSendersWithdrawalTakesBackQueuedCopiesAndNobodyElsesDoes) {
  const auto gialai = partner_client("vn-gialai");
  const auto thanhhoa = partner_client("vn-thanhhoa");
  const std::string original = "d0000000-0000-4000-8000-000000000001";
  ASSERT_EQ(post(gialai, example("hotline.tip", original)).status, 202);
  ASSERT_EQ(state_of(gialai, original, "kh-ratanakiri"), "pending");

  // Thanh Hoa cannot take back Gia Lai's message (its case.status is accepted as news, no more).
  const auto foreign = post(thanhhoa, status_message("d0000000-0000-4000-8000-000000000002",
                                                     "vn-thanhhoa", original));
  ASSERT_EQ(foreign.status, 202) << foreign.body;
  EXPECT_EQ(state_of(gialai, original, "kh-ratanakiri"), "pending");

  const auto own = post(gialai, status_message("d0000000-0000-4000-8000-000000000003", "vn-gialai",
                                               original));
  ASSERT_EQ(own.status, 202) << own.body;
  EXPECT_EQ(state_of(gialai, original, "kh-ratanakiri"), "withdrawn");
}

TEST_F(Withdrawal, ReachesEveryRecipientOfTheOriginalNotOnlyThoseItNames) {
  const auto gialai = partner_client("vn-gialai");
  const std::string original = "d0000000-0000-4000-8000-000000000011";
  std::string tip = example("hotline.tip", original);
  tip = std::regex_replace(tip, std::regex(R"("recipients": \[[^\]]*\])"),
                           R"("recipients": ["kh-ratanakiri", "vn-thanhhoa"])");
  ASSERT_EQ(post(gialai, tip).status, 202);

  // The withdrawal names Ratanakiri only; Thanh Hoa had the tip too and must hear of it.
  const std::string withdrawal = "d0000000-0000-4000-8000-000000000012";
  ASSERT_EQ(post(gialai, status_message(withdrawal, "vn-gialai", original)).status, 202);
  const auto r = get(gialai, "/v1/messages/" + withdrawal);
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("recipients")) << r.body;
  std::map<std::string, std::string> decided_by;
  for (const auto& row : doc["recipients"].GetArray()) {
    decided_by[row["partner"].GetString()] = row["decidedBy"].GetString();
  }
  EXPECT_EQ(decided_by, (std::map<std::string, std::string>{{"kh-ratanakiri", "explicit"},
                                                            {"vn-thanhhoa", "earlier-recipient"}}))
      << r.body;
  EXPECT_EQ(state_of(gialai, original, "vn-thanhhoa"), "withdrawn");

  // Another partner's status about the same message learns nothing of its recipients.
  const auto thanhhoa = partner_client("vn-thanhhoa");
  const std::string foreign = "d0000000-0000-4000-8000-000000000013";
  ASSERT_EQ(post(thanhhoa, status_message(foreign, "vn-thanhhoa", original)).status, 202);
  const auto f = get(thanhhoa, "/v1/messages/" + foreign);
  doc.Parse(f.body.c_str());
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("recipients")) << f.body;
  ASSERT_EQ(doc["recipients"].Size(), 1U) << f.body;
  EXPECT_EQ(std::string(doc["recipients"][0]["partner"].GetString()), "kh-ratanakiri");
}

TEST_F(Withdrawal, AMessageArrivingAfterItsWithdrawalIsStoredWithdrawn) {
  // The original got a 503 and was sent again after its sender had withdrawn it.
  const auto gialai = partner_client("vn-gialai");
  const std::string original = "d0000000-0000-4000-8000-000000000021";
  const auto w =
      post(gialai, status_message("d0000000-0000-4000-8000-000000000022", "vn-gialai", original));
  ASSERT_EQ(w.status, 202) << w.body;
  const auto late = post(gialai, example("hotline.tip", original));
  ASSERT_EQ(late.status, 202) << late.body;
  // Stored, so that a resend is answered as before, but none of its copies will go out.
  EXPECT_EQ(state_of(gialai, original, "kh-ratanakiri"), "withdrawn");
  EXPECT_EQ(post(gialai, example("hotline.tip", original)).status, 202);
  EXPECT_EQ(state_of(gialai, original, "kh-ratanakiri"), "withdrawn");
  EXPECT_NE(log_text().find("withdrawn-before-arrival"), std::string::npos);
}

// A recipient whose format cannot carry a withdrawal (KH-CNP has no cancellation message): the
// operators are told, since only people can tell that partner the message no longer stands.
class WithdrawalToAFormatWithoutOne : public Withdrawal {
 protected:
  void configure(config::gateway_config& config) override {
    Withdrawal::configure(config);
    enable_admin(config);
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",
       "agreements":["victim-data"],"purposes":["investigation","victim-protection"]},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp",
       "agreements":["victim-data"],"purposes":["investigation","victim-protection"],
       "endpoint":"https://127.0.0.1:9/v1/messages"}]})");
  }
};

TEST_F(WithdrawalToAFormatWithoutOne, TheOperatorsAreToldTheRecipientMustBeToldAnotherWay) {
  const auto gialai = partner_client("vn-gialai");
  const std::string original = "d0000000-0000-4000-8000-000000000031";
  ASSERT_EQ(post(gialai, example("hotline.tip", original)).status, 202);
  ASSERT_EQ(state_of(gialai, original, "kh-ratanakiri"), "pending");
  const std::string withdrawal = "d0000000-0000-4000-8000-000000000032";
  const auto w = post(gialai, status_message(withdrawal, "vn-gialai", original));
  ASSERT_EQ(w.status, 202) << w.body;
  EXPECT_EQ(state_of(gialai, original, "kh-ratanakiri"), "withdrawn");  // the queued copy
  const auto log = log_text();
  const auto at = log.find("\"event\":\"withdrawal.unreachable\"");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string line =
      log.substr(log.rfind('\n', at) + 1, log.find('\n', at) - log.rfind('\n', at));
  EXPECT_NE(line.find("\"level\":\"error\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"partner\":\"kh-ratanakiri\""), std::string::npos) << line;
  EXPECT_NE(line.find(withdrawal), std::string::npos) << line;
  EXPECT_NE(line.find(original), std::string::npos) << line;
  const auto metrics = admin(admin_client(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("mxgw_withdrawals_unreachable_total{partner=\"kh-ratanakiri\"} 1"),
            std::string::npos)
      << metrics.body;
  // A resend of the withdrawal is a duplicate and tells no one twice.
  ASSERT_EQ(post(gialai, status_message(withdrawal, "vn-gialai", original)).status, 202);
  EXPECT_NE(admin(admin_client(), "GET", "/metrics")
                .body.find("mxgw_withdrawals_unreachable_total{partner=\"kh-ratanakiri\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace mxgw::test
