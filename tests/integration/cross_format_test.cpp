// End to end across formats: Ratanakiri posts KH-CNP, Houaphanh receives LA-MPS XML and Thanh Hoa
// receives canonical mx/1, all over mutual TLS, each answering receipts in its own format.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>
#include <thread>

#include "adapters/common/dates.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class CrossFormat : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    auto start_sim = [&](const std::string& format) {
      sim::partner_sim_options options = sim_options();
      options.format = format;
      options.mappings_dir = source_dir() / "config" / "mappings";
      auto s = std::make_unique<sim::partner_sim>(options);
      s->start();
      return s;
    };
    houaphanh_ = start_sim("la-mps");
    thanhhoa_ = start_sim("mx");
    const std::string common = R"("agreements":["victim-data"],
        "purposes":["victim-protection","repatriation"],
        "delivery":{"backoff_base_ms":20,"backoff_cap_ms":100})";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp"},
      {"id":"la-houaphanh","name":"Houaphanh police","country":"LA","adapter":"la-mps",
       "endpoint":"https://127.0.0.1:)" + std::to_string(houaphanh_->port()) +
                                           R"(/v1/messages",)" + common + R"(},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "endpoint":"https://127.0.0.1:)" + std::to_string(thanhhoa_->port()) +
                                           R"(/v1/messages",)" + common + R"(}]})");
    write_file(dir_ / "routing.json", R"({"rules":[
      {"id":"kh-victims-onward","match":{"types":["victim.identification"],
       "senders":["kh-ratanakiri"]},"add":["la-houaphanh","vn-thanhhoa"]}]})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    houaphanh_.reset();
    thanhhoa_.reset();
  }

  std::unique_ptr<sim::partner_sim> houaphanh_, thanhhoa_;
};

TEST_F(CrossFormat, KhInLaAndCanonicalOutEachWithItsReceipt) {
  const auto ratanakiri = partner_client("kh-ratanakiri");
  const auto body = read_file(source_dir() / "tests" / "adapters" / "golden" / "kh-cnp" /
                              "victim-referral.kh.json");
  auto r = post(ratanakiri, body, "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  const auto id = derived_id("kh-ratanakiri", "RTK-2026-000123");

  // Houaphanh decoded LA-MPS XML and Thanh Hoa canonical JSON, and both recorded the message.
  const auto patience = std::chrono::seconds(20);
  ASSERT_TRUE(houaphanh_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  ASSERT_TRUE(thanhhoa_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_TRUE(thanhhoa_->has(id));
  EXPECT_EQ(houaphanh_->stats().failures_sent, 0u);

  // The sender sees both deliveries, routed by the rule, with their receipts' times.
  rapidjson::Document s;
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    s.Parse(get(ratanakiri, "/v1/messages/" + id).body.c_str());
    bool all = s.IsObject() && s["recipients"].Size() == 2;
    for (const auto& rec : s["recipients"].GetArray()) {
      all = all && std::string(rec["state"].GetString()) == "delivered";
    }
    if (all || std::chrono::steady_clock::now() > deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(s["recipients"].Size(), 2u) << get(ratanakiri, "/v1/messages/" + id).body;
  for (const auto& rec : s["recipients"].GetArray()) {
    EXPECT_EQ(std::string(rec["state"].GetString()), "delivered") << rec["partner"].GetString();
    EXPECT_EQ(std::string(rec["decidedBy"].GetString()), "kh-victims-onward");
  }
}

// Ratanakiri's adapter carries what it cannot map (carryUnmapped): a document scan travels in
// `unmapped` and must reach only the onward recipient with the victim-data agreement.
class CarriedDocumentScan : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    for (auto* s : {&kratie_, &stungtreng_}) {
      sim::partner_sim_options options = sim_options();
      options.keep_bodies = true;
      *s = std::make_unique<sim::partner_sim>(options);
      (*s)->start();
    }
    auto partner = [](const std::string& id, const sim::partner_sim& s, const std::string& more) {
      const std::string endpoint = "https://127.0.0.1:" + std::to_string(s.port()) + "/v1/messages";
      return R"({"id":")" + id + R"(","name":")" + id + R"(","country":"KH","endpoint":")" +
             endpoint + R"(",)" + more +
             R"("purposes":["victim-protection"],"delivery":{"backoff_base_ms":20}})";
    };
    write_file(dir_ / "partners.json",
               R"({"partners":[{"id":"kh-ratanakiri","name":"Ratanakiri","country":"KH",
      "adapter":"kh-cnp","carryUnmapped":true},)" +
                   partner("kh-kratie", *kratie_, R"("agreements":["victim-data"],)") + "," +
                   partner("kh-stungtreng", *stungtreng_, "") + "]}");
    write_file(dir_ / "routing.json", R"({"rules":[{"id":"onward","match":{"senders":
      ["kh-ratanakiri"]},"add":["kh-kratie","kh-stungtreng"]}]})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    kratie_.reset();
    stungtreng_.reset();
  }

  std::unique_ptr<sim::partner_sim> kratie_, stungtreng_;
};

TEST_F(CarriedDocumentScan, ReachesOnlyTheRecipientWithTheVictimDataAgreement) {
  const std::string scan = "RE9DVU1FTlQtU0NBTi1PRi1BLVZJQ1RJTQ==";
  const auto body = std::regex_replace(
      read_file(source_dir() / "tests" / "adapters" / "golden" / "kh-cnp" /
                "victim-referral.kh.json"),
      std::regex("\"narrative_en\":"),
      R"("attachments": [{"kind": "DOCUMENT_SCAN", "mime": "image/jpeg", "b64": ")" + scan +
          R"("}], "narrative_en":)");
  auto r = post(partner_client("kh-ratanakiri"), body, "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  const auto id = derived_id("kh-ratanakiri", "RTK-2026-000123");
  for (auto* s : {&kratie_, &stungtreng_}) {
    ASSERT_TRUE((*s)->wait_until([](const auto& st) { return st.unique_ids == 1; },
                                 std::chrono::seconds(20)));
  }
  const auto kept = kratie_->received(id);
  const auto withheld = stungtreng_->received(id);
  ASSERT_TRUE(kept && withheld);
  EXPECT_NE(kept->find(scan), std::string::npos) << "carried to the agreement's recipient";
  EXPECT_EQ(withheld->find(scan), std::string::npos) << *withheld;
  EXPECT_NE(withheld->find(R"({"pointer":"/unmapped","reason":"no-victim-data-agreement"})"),
            std::string::npos)
      << *withheld;
}

}  // namespace
}  // namespace mxgw::test
