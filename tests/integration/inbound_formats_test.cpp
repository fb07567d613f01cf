// Partners post their own formats to /v1/inbound/<adapter>: the message is decoded, checked like a
// canonical one, stored, answered with a receipt in the partner's format, and routed onwards.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>

#include "adapters/common/dates.hpp"
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
  const auto id = adapters::message_uuid("kh-ratanakiri", "RTK-2026-000123");
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

}  // namespace
}  // namespace mxgw::test
