// Partners post their own formats to /v1/inbound/<adapter>: the message is decoded, checked like a
// canonical one, stored, answered with a receipt in the partner's format, and routed onwards.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>

#include "adapters/common/dates.hpp"
#include "gateway/report/deadlines.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class InboundFormats : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp"},
      {"id":"la-houaphanh","name":"Houaphanh police","country":"LA","adapter":"la-mps"}]})");
    c.delivery.enabled = false;  // this suite is about the inbound side
  }

  static std::string golden(const std::string& name) {
    return read_file(source_dir() / "tests" / "adapters" / "golden" / name);
  }
};

TEST_F(InboundFormats, KhCnpIsAcceptedAnsweredWithAKhReceiptAndIdempotent) {
  const auto ratanakiri = partner_client("kh-ratanakiri");
  const std::string body = golden("kh-cnp/victim-referral.kh.json");
  auto r = post(ratanakiri, body, "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  rapidjson::Document receipt;
  receipt.Parse(r.body.c_str());
  ASSERT_TRUE(receipt.IsObject()) << r.body;
  EXPECT_EQ(std::string(receipt["format"].GetString()), "KH-CNP-XCHG/2");
  EXPECT_EQ(std::string(receipt["msg_kind"].GetString()), "RECEIPT");
  EXPECT_EQ(std::string(receipt["reply_to"].GetString()), "RTK-2026-000123");
  EXPECT_EQ(stored_messages(), 1u);

  // The canonical id is derived from the sender and msg_no: the sender can look it up.
  const auto id = derived_id("kh-ratanakiri", "RTK-2026-000123");
  auto status = get(ratanakiri, "/v1/messages/" + id);
  ASSERT_EQ(status.status, 200) << status.body;
  rapidjson::Document s;
  s.Parse(status.body.c_str());
  EXPECT_EQ(std::string(s["type"].GetString()), "victim.identification");
  EXPECT_EQ(std::string(s["sender"].GetString()), "kh-ratanakiri");

  // The same msg_no again is the same message: the same receipt, nothing new stored.
  auto again = post(ratanakiri, body, "/v1/inbound/kh-cnp");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, r.body);
  EXPECT_EQ(stored_messages(), 1u);
}

TEST_F(InboundFormats, LaMpsXmlIsAcceptedWithAnXmlReceipt) {
  const auto houaphanh = partner_client("la-houaphanh");
  auto r = post(houaphanh, golden("la-mps/victim.xml"), "/v1/inbound/la-mps", "application/xml");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.headers["content-type"], "application/xml");
  EXPECT_NE(r.body.find("type=\"receipt\""), std::string::npos) << r.body;
  EXPECT_EQ(stored_messages(), 1u);
}

TEST_F(InboundFormats, RefusalsComeInThePartnersFormatAndStoreNothing) {
  const auto ratanakiri = partner_client("kh-ratanakiri");
  std::string body = golden("kh-cnp/victim-referral.kh.json");
  body = std::regex_replace(body, std::regex("\"SCAM_COMPOUND\""), "\"SPACE_PIRACY\"");
  auto r = post(ratanakiri, body, "/v1/inbound/kh-cnp");
  EXPECT_EQ(r.status, 422) << r.body;
  rapidjson::Document error;
  error.Parse(r.body.c_str());
  ASSERT_TRUE(error.IsObject() && error.HasMember("error")) << r.body;
  EXPECT_NE(std::string(error["error"].GetString()).find("/case/exploitation/0"), std::string::npos)
      << r.body;

  auto xml = post(partner_client("la-houaphanh"),
                  "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><LaoPoliceMessage/>",
                  "/v1/inbound/la-mps", "application/xml");
  EXPECT_EQ(xml.status, 400) << xml.body;
  EXPECT_NE(xml.body.find("<Error>"), std::string::npos) << xml.body;
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(InboundFormats, APartnerMaySendOnlyItsOwnFormat) {
  // Gia Lai is a canonical partner; Ratanakiri is set up for kh-cnp, not la-mps.
  auto r = post(partner_client("vn-gialai"), golden("kh-cnp/victim-referral.kh.json"),
                "/v1/inbound/kh-cnp");
  EXPECT_EQ(r.status, 403);
  r = post(partner_client("kh-ratanakiri"), golden("la-mps/victim.xml"), "/v1/inbound/la-mps",
           "application/xml");
  EXPECT_EQ(r.status, 403);
  r = post(partner_client("kh-ratanakiri"), "{}", "/v1/inbound/no-such-format");
  EXPECT_EQ(r.status, 404);
  // The wrong media type for the format.
  r = post(partner_client("kh-ratanakiri"), golden("kh-cnp/victim-referral.kh.json"),
           "/v1/inbound/kh-cnp", "application/xml");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(stored_messages(), 0u);
}

// Gia Lai's verification request reaches Ratanakiri in KH-CNP; Ratanakiri answers it by the
// msg_no it received. The answer is linked to the request, so the deadline watch does not list it.
class KhReplies : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    sim::partner_sim_options options = sim_options();
    options.format = "kh-cnp";
    options.mappings_dir = source_dir() / "config" / "mappings";
    options.keep_bodies = true;
    ratanakiri_ = std::make_unique<sim::partner_sim>(options);
    ratanakiri_->start();
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp",
       "endpoint":"https://127.0.0.1:)" + std::to_string(ratanakiri_->port()) +
                                           R"(/v1/messages","delivery":{"backoff_base_ms":20}}]})");
    c.delivery.poll_interval_ms = 20;
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
  }

  /// A KH-CNP verification reply from Ratanakiri naming `reply_to`.
  static std::string kh_reply(const std::string& msg_no, const std::string& reply_to) {
    return R"({"format": "KH-CNP-XCHG/2", "msg_no": ")" + msg_no +
           R"(", "msg_kind": "VERIFY_REPLY",
        "sent_at": "24/11/2026 14:30:00 +07:00", "from_unit": {"code": "KH-16-PC"},
        "to_unit": {"code": "VN-30-CA"}, "reply_to": ")" +
           reply_to + R"(", "classification": "CONFIDENTIAL",
        "subject": {"family_name_lat": "KUMRU", "given_name_lat": "SOPHEA", "sex": "F"},
        "answer": {"result": "CONFIRMED", "note_en": "Registered in Bar Kaev (fictional)."}})";
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_;
};

TEST_F(KhReplies, AnAnswerNamingTheMsgNoReceivedSettlesTheRequest) {
  const std::string request_id = "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085";
  // The example request (recipient kh-ratanakiri, deadline 2026-12-05, which has passed).
  auto r = post(partner_client("vn-gialai"), example("verification.request"));
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; },
                                      std::chrono::seconds(20)));
  const auto ids = ratanakiri_->ids();
  ASSERT_EQ(ids.size(), 1u);
  const auto bytes = ratanakiri_->received(ids[0]);
  ASSERT_TRUE(bytes.has_value());
  rapidjson::Document sent;
  sent.Parse(bytes->c_str());
  ASSERT_TRUE(sent.IsObject() && sent.HasMember("msg_no"));
  const std::string msg_no = sent["msg_no"].GetString();

  // Unanswered: escalated.
  const auto [before, before_ok] = gateway_->deadlines().sweep_now();
  ASSERT_TRUE(before_ok);
  EXPECT_EQ(before.escalated, 1u);

  // A reference the gateway did not write is kept as the thread and settles nothing; a damaged
  // copy of the one it wrote is refused, in KH-CNP, and stores nothing.
  const auto ratanakiri = partner_client("kh-ratanakiri");
  r = post(ratanakiri, kh_reply("RTK-VA-2026-000001", "VN30-VR-2026-000088"), "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(gateway_->deadlines().sweep_now().first.overdue, 1u);
  const auto stored = stored_messages();
  std::string damaged = msg_no;
  damaged.back() = 'Z';
  r = post(ratanakiri, kh_reply("RTK-VA-2026-000002", damaged), "/v1/inbound/kh-cnp");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_NE(r.body.find("/reply_to"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(damaged), std::string::npos) << "the reference is not echoed";
  EXPECT_EQ(stored_messages(), stored);

  // Ratanakiri's answer names the msg_no it received: the request is answered.
  r = post(ratanakiri, kh_reply("RTK-VA-2026-000003", msg_no), "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto answer_id = derived_id("kh-ratanakiri", "RTK-VA-2026-000003");
  rapidjson::Document answer;
  answer.Parse(stored_body(answer_id).c_str());
  ASSERT_TRUE(answer.IsObject()) << "the answer is stored";
  ASSERT_TRUE(answer.HasMember("inReplyTo")) << "the answer names the request it answers";
  EXPECT_EQ(std::string(answer["inReplyTo"].GetString()), request_id);
  const auto [after, after_ok] = gateway_->deadlines().sweep_now();
  ASSERT_TRUE(after_ok);
  EXPECT_EQ(after.closed, 1u);
  EXPECT_EQ(after.overdue, 0u);
}

}  // namespace
}  // namespace mxgw::test
