// A reply names the message it answers, to the partner who sent that message, by that partner's
// own reference (a KH-CNP msg_no, an LA-MPS ref): the gateway id is not one it ever learned.
// Over mutual TLS, end to end: KH and LA post requests in their formats, a Vietnamese office
// answers in the canonical model, and the stand-in partners receive the answers.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>

#include "adapters/common/dates.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(20);

class ReplyReference : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    auto start_sim = [&](const std::string& format) {
      sim::partner_sim_options options = sim_options();
      options.format = format;
      options.mappings_dir = source_dir() / "config" / "mappings";
      options.keep_bodies = true;
      auto s = std::make_unique<sim::partner_sim>(options);
      s->start();
      return s;
    };
    ratanakiri_ = start_sim("kh-cnp");
    houaphanh_ = start_sim("la-mps");
    const std::string common = R"("agreements":["victim-data"],
        "purposes":["identity-verification","victim-protection","repatriation"],
        "delivery":{"backoff_base_ms":20,"backoff_cap_ms":100})";
    auto endpoint = [](const sim::partner_sim& s) {
      return "https://127.0.0.1:" + std::to_string(s.port()) + "/v1/messages";
    };
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp",
       "endpoint":")" + endpoint(*ratanakiri_) +
                                           R"(",)" + common + R"(},
      {"id":"la-houaphanh","name":"Houaphanh police","country":"LA","adapter":"la-mps",
       "endpoint":")" + endpoint(*houaphanh_) +
                                           R"(",)" + common + R"(},
      {"id":"vn-gialai","name":"Gia Lai liaison office","country":"VN"}]})");
    write_file(dir_ / "routing.json", R"({"rules":[]})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
    houaphanh_.reset();
  }

  // Gia Lai's canonical answer to `request`, for `recipients` (a JSON array's members).
  std::string answer(const std::string& id, const std::string& request,
                     const std::string& recipients) {
    auto text = example("verification.result", id);
    text = std::regex_replace(text, std::regex(R"("inReplyTo": "[^"]*")"),
                              R"("inReplyTo": ")" + request + R"(")");
    return std::regex_replace(text, std::regex(R"("recipients": \[[^\]]*\])"),
                              R"("recipients": [)" + recipients + "]");
  }

  // The one body `sim` received (it holds nothing else in these tests).
  static std::string received(const sim::partner_sim& sim) {
    EXPECT_TRUE(sim.wait_until([](const auto& s) { return s.unique_ids >= 1; }, patience));
    const auto ids = sim.ids();
    EXPECT_EQ(ids.size(), 1U);
    return ids.empty() ? std::string() : sim.received(ids.front()).value_or("");
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_, houaphanh_;
};

TEST_F(ReplyReference, AnAnswerNamesTheRequestByTheRequestersOwnMsgNo) {
  auto request = read_file(source_dir() / "tests" / "adapters" / "golden" / "kh-cnp" /
                           "encode-verification.request.kh.json");
  request = std::regex_replace(request, std::regex(R"("msg_no": "[^"]*")"),
                               R"("msg_no": "RTK-VR-2026-000777")");
  auto r = post(partner_client("kh-ratanakiri"), request, "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  const auto request_id = derived_id("kh-ratanakiri", "RTK-VR-2026-000777");

  // Gia Lai answers Ratanakiri and, in the same message, Houaphanh (which did not ask).
  r = post(partner_client("vn-gialai"), answer("3c1f6a0e-5b2d-4e8f-9a7c-1d2e3f4a5b6c", request_id,
                                               R"("kh-ratanakiri","la-houaphanh")"));
  ASSERT_EQ(r.status, 202) << r.body;

  rapidjson::Document kh;
  kh.Parse(received(*ratanakiri_).c_str());
  ASSERT_TRUE(kh.IsObject());
  EXPECT_STREQ(kh["msg_kind"].GetString(), "VERIFY_REPLY");
  EXPECT_STREQ(kh["reply_to"].GetString(), "RTK-VR-2026-000777")
      << "the commissariat was given an id it never learned";
  // Houaphanh did not send the request: it is named by the gateway id.
  const auto la = received(*houaphanh_);
  EXPECT_NE(la.find("replyTo=\"" + request_id + "\""), std::string::npos) << la;
}

TEST_F(ReplyReference, AnAnswerNamesTheRequestByTheRequestersOwnRef) {
  const auto request =
      read_file(source_dir() / "tests" / "adapters" / "golden" / "la-mps" / "verify-request.xml");
  auto r = post(partner_client("la-houaphanh"), request, "/v1/inbound/la-mps", "application/xml");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  const auto request_id = derived_id("la-houaphanh", "SV-2569-VR-0019");
  r = post(partner_client("vn-gialai"),
           answer("4d2a7b1f-6c3e-4f90-8b8d-2e3f4a5b6c7d", request_id, R"("la-houaphanh")"));
  ASSERT_EQ(r.status, 202) << r.body;
  const auto la = received(*houaphanh_);
  EXPECT_NE(la.find(R"(replyTo="SV-2569-VR-0019")"), std::string::npos) << la;
}

TEST_F(ReplyReference, AnAnswerToAMessageTheGatewayDoesNotHaveNamesTheGatewayId) {
  const std::string unknown = "5e3b8c2a-7d4f-4a01-9c9e-3f4a5b6c7d8e";
  auto r = post(partner_client("vn-gialai"),
                answer("6f4c9d3b-8e5a-4b12-8dad-4a5b6c7d8e9f", unknown, R"("kh-ratanakiri")"));
  ASSERT_EQ(r.status, 202) << r.body;
  rapidjson::Document kh;
  kh.Parse(received(*ratanakiri_).c_str());
  ASSERT_TRUE(kh.IsObject());
  EXPECT_EQ(std::string(kh["reply_to"].GetString()), unknown);
}

}  // namespace
}  // namespace mxgw::test
