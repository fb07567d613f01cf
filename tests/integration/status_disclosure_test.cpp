// What the status endpoint (GET /v1/messages/<id>) tells whom, over real mTLS: a recipient reads
// the state of its own copy but not the gateway's routing and release rule names; a sender reads
// why partners of its own country were left out, but not the state of partners of other
// countries (a foreign partner must not learn that a Lao province is disabled).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/pipeline/document_edit.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(20);

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str());
  return doc;
}

// The row of `partner` in a status document (nullptr when there is none).
const rapidjson::Value* row_of(const rapidjson::Document& s, const std::string& partner) {
  if (!s.IsObject() || !s.HasMember("recipients") || !s["recipients"].IsArray()) {
    return nullptr;
  }
  for (const auto& r : s["recipients"].GetArray()) {
    if (json::get_string(r, "partner") == partner) {
      return &r;
    }
  }
  return nullptr;
}

// The `excluded` entries of a status document as "partner considered reason", sorted.
std::vector<std::string> excluded_of(const rapidjson::Document& s) {
  std::vector<std::string> out;
  if (!s.IsObject() || !s.HasMember("excluded") || !s["excluded"].IsArray()) {
    return out;
  }
  for (const auto& e : s["excluded"].GetArray()) {
    EXPECT_EQ(e.MemberCount(), 3u) << "partner, considered, reason and nothing else";
    out.push_back(std::string(json::get_string(e, "partner")) + " " +
                  std::string(json::get_string(e, "considered")) + " " +
                  std::string(json::get_string(e, "reason")));
  }
  std::sort(out.begin(), out.end());
  return out;
}

class StatusDisclosure : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    for (auto* sim : {&ratanakiri_, &thanhhoa_}) {
      sim::partner_sim_options options = sim_options();
      options.keep_bodies = true;
      *sim = std::make_unique<sim::partner_sim>(options);
      (*sim)->start();
    }
    const std::string delivery = R"("delivery": {"timeout_ms": 2000, "max_attempts": 5,
        "max_age_s": 3600, "backoff_base_ms": 20, "backoff_cap_ms": 100, "concurrency": 4})";
    const std::string agreed =
        R"("agreements":["victim-data"],"purposes":["investigation","victim-protection"],)";
    // Two countries' partners on each side of every exclusion: Vietnamese (one disabled, one
    // without an endpoint), Cambodian (one that takes no tips) and a disabled Lao province.
    write_file(dir_ / "partners.json",
               R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",)" +
                   agreed + R"("endpoint":"https://127.0.0.1:)" +
                   std::to_string(thanhhoa_->port()) + R"(/v1/messages",)" + delivery + R"(},
      {"id":"vn-quangtri","name":"Quang Tri liaison office","country":"VN","enabled":false,
       "endpoint":"https://127.0.0.1:9/v1/messages"},
      {"id":"vn-haiphong","name":"Hai Phong liaison office","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)" +
                   agreed + R"("endpoint":"https://127.0.0.1:)" +
                   std::to_string(ratanakiri_->port()) + R"(/v1/messages",)" + delivery + R"(},
      {"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH",
       "endpoint":"https://127.0.0.1:9/v1/messages","receives":["receipt"]},
      {"id":"la-houaphanh","name":"Houaphanh provincial police","country":"LA","enabled":false,
       "endpoint":"https://127.0.0.1:9/v1/messages"}]})");
    // Gia Lai's tips go to Ratanakiri and Hai Phong by rule (Hai Phong has no endpoint: an
    // exclusion a rule considered); secret copies across the border wait for two administrators.
    write_file(dir_ / "routing.json", R"({"rules": [
      {"id": "kh-northeast-victims", "match": {"types": ["hotline.tip"], "senders": ["vn-gialai"]},
       "add": ["kh-ratanakiri"]},
      {"id": "vn-coast-tips", "match": {"types": ["hotline.tip"], "senders": ["vn-gialai"]},
       "add": ["vn-haiphong"]}],
      "release": {"approvals": 2, "rules": [
      {"id": "secret-across-border", "match": {"confidentiality": ["secret"]},
       "to": {"crossBorder": true}}]}})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
    enable_admin(c);
  }

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
    ratanakiri_tls_ = partner_client("kh-ratanakiri");
    thanhhoa_tls_ = partner_client("vn-thanhhoa");
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
    thanhhoa_.reset();
  }

  // The example hotline tip from `sender` to `recipients` (a JSON array), `onward` transfer,
  // at `confidentiality`; expects 202.
  void submit_tip(const cli::client_tls& tls, const std::string& id, const std::string& sender,
                  const std::string& recipients, const std::string& onward = "prohibited",
                  const std::string& confidentiality = "restricted") {
    rapidjson::Document doc;
    doc.Parse(example("hotline.tip", id).c_str());
    set_json(doc, "/sender", "\"" + sender + "\"");
    set_json(doc, "/recipients", recipients);
    set_json(doc, "/handling/onwardTransfer", "\"" + onward + "\"");
    set_json(doc, "/handling/confidentiality", "\"" + confidentiality + "\"");
    const auto r = post(tls, json::to_string(doc));
    ASSERT_EQ(r.status, 202) << r.body << r.error;
  }

  rapidjson::Document status(const cli::client_tls& tls, const std::string& id) {
    const auto r = get(tls, "/v1/messages/" + id);
    EXPECT_EQ(r.status, 200) << r.body;
    return parse(r.body);
  }

  // The sender's status of `id` once `partner`'s copy is in `state` (the last one read after
  // `patience` otherwise).
  rapidjson::Document sender_status_when(const std::string& id, const std::string& partner,
                                         const std::string& state) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      auto s = status(gialai_, id);
      const auto* row = row_of(s, partner);
      if ((row != nullptr && json::get_string(*row, "state") == state) ||
          std::chrono::steady_clock::now() > deadline) {
        return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_, thanhhoa_;
  cli::client_tls gialai_, ratanakiri_tls_, thanhhoa_tls_;
};

TEST_F(StatusDisclosure, ARecipientReadsItsCopysStateButNotTheRoutingRuleThatAddedIt) {
  const std::string id = "d15c1000-0000-4000-8000-000000000001";
  submit_tip(gialai_, id, "vn-gialai", R"(["vn-thanhhoa"])", "allowed");
  auto sent = sender_status_when(id, "kh-ratanakiri", "delivered");
  // The sender's view is unchanged: which rule added Ratanakiri, that it named Thanh Hoa.
  const auto* by_rule = row_of(sent, "kh-ratanakiri");
  ASSERT_NE(by_rule, nullptr) << json::to_string(sent);
  EXPECT_EQ(json::get_string(*by_rule, "state"), "delivered");
  EXPECT_EQ(json::get_string(*by_rule, "decidedBy"), "kh-northeast-victims");
  const auto* named = row_of(sent, "vn-thanhhoa");
  ASSERT_NE(named, nullptr);
  EXPECT_EQ(json::get_string(*named, "decidedBy"), "explicit");

  // Ratanakiri reads the state of its own copy, and nothing of the gateway's rules.
  const auto own_response = get(ratanakiri_tls_, "/v1/messages/" + id);
  ASSERT_EQ(own_response.status, 200) << own_response.body;
  EXPECT_EQ(own_response.body.find("kh-northeast-victims"), std::string::npos) << own_response.body;
  const auto own = parse(own_response.body);
  ASSERT_TRUE(own.IsObject());
  ASSERT_EQ(own["recipients"].Size(), 1u);
  const auto& row = own["recipients"][0];
  EXPECT_EQ(json::get_string(row, "partner"), "kh-ratanakiri");
  EXPECT_EQ(json::get_string(row, "state"), "delivered");
  EXPECT_TRUE(row.HasMember("attempts") && row.HasMember("deliveredAt")) << own_response.body;
  EXPECT_FALSE(row.HasMember("decidedBy")) << own_response.body;
  EXPECT_FALSE(row.HasMember("heldBy")) << own_response.body;
  EXPECT_FALSE(own.HasMember("excluded"));
  // So does a recipient the sender named (no rule name there, but the same document).
  const auto named_own = status(thanhhoa_tls_, id);
  ASSERT_TRUE(named_own.IsObject());
  ASSERT_EQ(named_own["recipients"].Size(), 1u);
  EXPECT_FALSE(named_own["recipients"][0].HasMember("decidedBy"));
}

TEST_F(StatusDisclosure, AReleasedRecipientDoesNotReadTheReleaseRuleThatHeldItsCopy) {
  const std::string id = "d15c1000-0000-4000-8000-000000000002";
  submit_tip(gialai_, id, "vn-gialai", R"(["kh-ratanakiri"])", "prohibited", "secret");
  auto held = sender_status_when(id, "kh-ratanakiri", "held");
  ASSERT_NE(row_of(held, "kh-ratanakiri"), nullptr);
  ASSERT_EQ(json::get_string(*row_of(held, "kh-ratanakiri"), "state"), "held");
  const auto alice = admin_client("alice");
  const auto bob = admin_client("bob");
  const std::string copy = "/admin/v1/held/" + id + "/kh-ratanakiri/";
  ASSERT_EQ(admin(alice, "POST", copy + "approve").status, 200);
  ASSERT_EQ(admin(bob, "POST", copy + "approve").status, 200);
  auto sent = sender_status_when(id, "kh-ratanakiri", "delivered");
  const auto* row = row_of(sent, "kh-ratanakiri");
  ASSERT_NE(row, nullptr);
  ASSERT_EQ(json::get_string(*row, "state"), "delivered");
  // The sender still reads which rule held the copy.
  EXPECT_EQ(json::get_string(*row, "heldBy"), "secret-across-border");

  const auto own_response = get(ratanakiri_tls_, "/v1/messages/" + id);
  ASSERT_EQ(own_response.status, 200) << own_response.body;
  EXPECT_EQ(own_response.body.find("secret-across-border"), std::string::npos) << own_response.body;
  const auto own = parse(own_response.body);
  ASSERT_TRUE(own.IsObject());
  ASSERT_EQ(own["recipients"].Size(), 1u);
  EXPECT_EQ(json::get_string(own["recipients"][0], "state"), "delivered");
  EXPECT_FALSE(own["recipients"][0].HasMember("heldBy")) << own_response.body;
  EXPECT_FALSE(own["recipients"][0].HasMember("decidedBy")) << own_response.body;
}

TEST_F(StatusDisclosure, AForeignSenderDoesNotLearnTheStateOfPartnersOfOtherCountries) {
  // Ratanakiri names a Vietnamese office that gets it, a Cambodian one that takes no tips, a
  // disabled Vietnamese office, a disabled Lao province and an id no partner has.
  const std::string id = "d15c1000-0000-4000-8000-000000000003";
  submit_tip(ratanakiri_tls_, id, "kh-ratanakiri",
             R"(["vn-thanhhoa", "kh-stungtreng", "vn-quangtri", "la-houaphanh", "la-nowhere"])");
  const auto response = get(ratanakiri_tls_, "/v1/messages/" + id);
  ASSERT_EQ(response.status, 200) << response.body;
  const auto s = parse(response.body);
  ASSERT_TRUE(s.IsObject());
  // The exclusion within its own country as before; of the others it named, only that they
  // were left out: not that two are disabled and one does not exist.
  EXPECT_EQ(excluded_of(s), (std::vector<std::string>{
                                "kh-stungtreng explicit does-not-receive-type",
                                "la-houaphanh explicit not-available",
                                "la-nowhere explicit not-available",
                                "vn-quangtri explicit not-available"}))
      << response.body;
  for (const char* reason : {"disabled", "unknown"}) {
    EXPECT_EQ(response.body.find(reason), std::string::npos) << reason << ": " << response.body;
  }
  // Its recipients are listed as before (the copy it asked for, whatever the country).
  const auto* named = row_of(s, "vn-thanhhoa");
  ASSERT_NE(named, nullptr) << response.body;
  EXPECT_EQ(json::get_string(*named, "decidedBy"), "explicit");
  EXPECT_EQ(s["recipients"].Size(), 1u);
}

TEST_F(StatusDisclosure, ADomesticSenderReadsItsOwnCountrysExclusionsAsBefore) {
  const std::string id = "d15c1000-0000-4000-8000-000000000004";
  submit_tip(gialai_, id, "vn-gialai",
             R"(["vn-thanhhoa", "vn-quangtri", "la-houaphanh", "kh-stungtreng"])", "allowed");
  const auto response = get(gialai_, "/v1/messages/" + id);
  ASSERT_EQ(response.status, 200) << response.body;
  const auto s = parse(response.body);
  ASSERT_TRUE(s.IsObject());
  // The Vietnamese exclusions, each as it always read (the sender named Quang Tri; a rule added
  // Hai Phong, which has no endpoint); the Lao and Cambodian partners it named, without why.
  EXPECT_EQ(excluded_of(s), (std::vector<std::string>{"kh-stungtreng explicit not-available",
                                                      "la-houaphanh explicit not-available",
                                                      "vn-haiphong vn-coast-tips no-endpoint",
                                                      "vn-quangtri explicit disabled"}))
      << response.body;
  // Every recipient row as before, the rule names included.
  ASSERT_EQ(s["recipients"].Size(), 2u) << response.body;
  const auto* named = row_of(s, "vn-thanhhoa");
  const auto* by_rule = row_of(s, "kh-ratanakiri");
  ASSERT_NE(named, nullptr);
  ASSERT_NE(by_rule, nullptr);
  EXPECT_EQ(json::get_string(*named, "decidedBy"), "explicit");
  EXPECT_EQ(json::get_string(*by_rule, "decidedBy"), "kh-northeast-victims");
}

}  // namespace
}  // namespace mxgw::test
