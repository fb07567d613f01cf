// A copy rendered with victim data for a holder of the `victim-data` agreement is sent only while
// its recipient still holds it, end to end: a real gateway, real mutual-TLS delivery to stand-in
// partners over loopback, the store encrypted at rest as shipped. A copy queued while delivery was
// off, then found at delivery after the partner lost the agreement (partners.json changed), is a
// dead letter `agreement-withdrawn` and never reaches the partner, not even after a replay; a held
// copy released after an administrator took the agreement away does not leave either; a partner
// that keeps the agreement, and one that never had it, get their copies as before.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

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

class AgreementWithdrawn : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    for (auto* sim : {&ratanakiri_, &thanhhoa_, &stungtreng_}) {
      sim::partner_sim_options options = sim_options();
      options.keep_bodies = true;
      *sim = std::make_unique<sim::partner_sim>(options);
      (*sim)->start();
    }
    write_partners(true);
    write_file(dir_ / "routing.json", R"({"rules": [], "release": {"approvals": 2, "rules": [
      {"id": "secret-across-border", "match": {"confidentiality": ["secret"]},
       "to": {"crossBorder": true}}]}})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.enabled = delivery_at_start();
    c.delivery.poll_interval_ms = 20;
    enable_admin(c);
  }

  /// Whether the gateway delivers from the start (false: copies stay queued until a restart).
  virtual bool delivery_at_start() const { return true; }

  /// partners.json: Ratanakiri with the victim-data agreement or without it; Thanh Hoa always
  /// with it; Stung Treng never.
  void write_partners(bool ratanakiri_agreement) {
    const std::string delivery = R"("delivery": {"timeout_ms": 2000, "max_attempts": 3,
        "max_age_s": 3600, "backoff_base_ms": 20, "backoff_cap_ms": 100})";
    const auto endpoint = [](const std::unique_ptr<sim::partner_sim>& sim) {
      return R"("endpoint":"https://127.0.0.1:)" + std::to_string(sim->port()) +
             R"(/v1/messages",)";
    };
    write_file(dir_ / "partners.json",
               R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)" +
                   std::string(ratanakiri_agreement ? R"("agreements":["victim-data"],)" : "") +
                   endpoint(ratanakiri_) + delivery + R"(},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "agreements":["victim-data"],)" +
                   endpoint(thanhhoa_) + delivery + R"(},
      {"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH",)" +
                   endpoint(stungtreng_) + delivery + R"(}]})");
  }

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
    alice_ = admin_client("alice");
    bob_ = admin_client("bob");
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
    thanhhoa_.reset();
    stungtreng_.reset();
  }

  /// The example victim identification (names, a document number, a narrative) to the three
  /// partners, at `confidentiality`.
  void submit_victim(const std::string& id, const std::string& confidentiality) {
    rapidjson::Document doc;
    doc.Parse(example("victim.identification", id).c_str());
    doc["handling"].RemoveMember("releasableTo");
    set_json(doc, "/recipients", R"(["kh-ratanakiri", "vn-thanhhoa", "kh-stungtreng"])");
    set_json(doc, "/handling/confidentiality", "\"" + confidentiality + "\"");
    auto r = post(gialai_, json::to_string(doc));
    ASSERT_EQ(r.status, 202) << r.body << r.error;
  }

  /// The recipient's entry in the sender's status of `id` (Null when absent).
  rapidjson::Document recipient_status(const std::string& id, const std::string& partner) {
    auto doc = parse(get(gialai_, "/v1/messages/" + id).body);
    rapidjson::Document out;
    if (doc.IsObject() && doc.HasMember("recipients")) {
      for (auto& r : doc["recipients"].GetArray()) {
        if (json::get_string(r, "partner") == partner) {
          out.CopyFrom(r, out.GetAllocator());
        }
      }
    }
    return out;
  }

  /// The recipient's state once it is `wanted` (or what it is when patience runs out).
  std::string state_when(const std::string& id, const std::string& partner,
                         const std::string& wanted) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      auto r = recipient_status(id, partner);
      const std::string state(r.IsObject() ? json::get_string(r, "state") : "");
      if (state == wanted || std::chrono::steady_clock::now() > deadline) {
        return state;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// The `delivery.dead` entries of the audit chain about `partner`: "error/limit/agreement".
  std::vector<std::string> dead_audit(const std::string& partner) {
    auto r = admin(alice_, "GET", "/admin/v1/audit?event=delivery.dead");
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> out;
    auto doc = parse(r.body);
    if (!doc.IsObject() || !doc.HasMember("entries")) {
      return out;
    }
    for (const auto& e : doc["entries"].GetArray()) {
      const auto& entry = e["entry"];
      if (json::get_string(entry, "partner") != partner || !entry.HasMember("details")) {
        continue;
      }
      const auto& d = entry["details"];
      out.push_back(std::string(json::get_string(d, "error")) + "/" +
                    std::string(json::get_string(d, "limit")) + "/" +
                    std::string(json::get_string(d, "agreement")));
    }
    return out;
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_, thanhhoa_, stungtreng_;
  cli::client_tls gialai_, alice_, bob_;
};

// Copies accepted while delivery is off wait in the queue; the gateway then restarts delivering,
// with partners.json changed in between.
class AgreementWithdrawnQueued : public AgreementWithdrawn {
 protected:
  bool delivery_at_start() const override { return false; }

  /// Stops the gateway, writes partners.json (Ratanakiri with or without the agreement) and
  /// starts it again, delivering.
  void restart_delivering(bool ratanakiri_agreement) {
    stop();
    write_partners(ratanakiri_agreement);
    config_.delivery.enabled = true;
    restart();
  }
};

TEST_F(AgreementWithdrawnQueued, AFullCopyIsNotSentOnceThePartnerNoLongerHoldsTheAgreement) {
  const std::string id = "2c8e4a6b-0d1f-4e3a-9b5c-7d9e1f3a5b7c";
  submit_victim(id, "confidential");
  // Ratanakiri's copy was rendered in full (it held the agreement), Stung Treng's without the
  // victim data; nothing has left yet.
  ASSERT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "state"), "pending");
  EXPECT_FALSE(recipient_status(id, "kh-ratanakiri").HasMember("withheld"));
  EXPECT_TRUE(recipient_status(id, "kh-stungtreng").HasMember("withheld"));

  restart_delivering(false);

  // The others get their copies as routing made them.
  ASSERT_TRUE(thanhhoa_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  const auto full = thanhhoa_->received(id).value_or("");
  EXPECT_NE(full.find("\"narrative\""), std::string::npos) << "Thanh Hoa keeps the agreement";
  const auto without = stungtreng_->received(id).value_or("");
  EXPECT_EQ(without.find("\"narrative\""), std::string::npos);
  EXPECT_NE(without.find("no-victim-data-agreement"), std::string::npos);

  // Ratanakiri's full copy is a dead letter with the reason, and never reached it.
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "dead"), "dead");
  EXPECT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "lastError"),
            "agreement-withdrawn");
  EXPECT_EQ(json::get_string(recipient_status(id, "vn-thanhhoa"), "state"), "delivered");
  EXPECT_EQ(ratanakiri_->stats().requests, 0u);
  EXPECT_FALSE(ratanakiri_->has(id));
  auto dead = parse(admin(alice_, "GET", "/admin/v1/dead-letters").body);
  ASSERT_TRUE(dead.IsObject() && dead.HasMember("deadLetters"));
  ASSERT_EQ(dead["deadLetters"].Size(), 1u);
  EXPECT_EQ(json::get_string(dead["deadLetters"][0], "recipient"), "kh-ratanakiri");
  EXPECT_EQ(json::get_string(dead["deadLetters"][0], "lastError"), "agreement-withdrawn");
  EXPECT_EQ(dead_audit("kh-ratanakiri"),
            (std::vector<std::string>{"agreement-withdrawn/agreement-withdrawn/victim-data"}));

  // A replay meets the same check: dead again, still not sent.
  auto replay = admin(alice_, "POST", "/admin/v1/dead-letters/" + id + "/kh-ratanakiri/replay");
  ASSERT_EQ(replay.status, 200) << replay.body;
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (dead_audit("kh-ratanakiri").size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(dead_audit("kh-ratanakiri"),
            (std::vector<std::string>{"agreement-withdrawn/agreement-withdrawn/victim-data",
                                      "agreement-withdrawn/agreement-withdrawn/victim-data"}));
  EXPECT_EQ(state_when(id, "kh-ratanakiri", "dead"), "dead");
  EXPECT_EQ(ratanakiri_->stats().requests, 0u);
  EXPECT_FALSE(ratanakiri_->has(id));

  // The log says why, never what the copy holds.
  const auto log = log_text();
  EXPECT_NE(log.find("\"reason\":\"agreement-withdrawn\""), std::string::npos);
  EXPECT_EQ(log.find("SOPHEA"), std::string::npos);
  EXPECT_EQ(log.find("EXAMPLE-"), std::string::npos);
}

TEST_F(AgreementWithdrawnQueued, APartnerThatKeepsTheAgreementStillGetsItsFullCopy) {
  const std::string id = "3d9f5b7c-1e2a-4f4b-8c6d-8e0f2a4b6c8d";
  submit_victim(id, "confidential");
  restart_delivering(true);

  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  const auto copy = ratanakiri_->received(id).value_or("");
  EXPECT_NE(copy.find("\"narrative\""), std::string::npos) << "the full copy";
  EXPECT_EQ(copy.find("\"withheld\""), std::string::npos);
  EXPECT_EQ(state_when(id, "kh-ratanakiri", "delivered"), "delivered");
  ASSERT_TRUE(stungtreng_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_EQ(state_when(id, "kh-stungtreng", "delivered"), "delivered")
      << "a copy without victim data relies on no agreement";
  EXPECT_TRUE(dead_audit("kh-ratanakiri").empty());
}

TEST_F(AgreementWithdrawn, AHeldCopyReleasedAfterTheAgreementWasTakenAwayDoesNotLeave) {
  const std::string id = "4e0a6c8d-2f3b-4a5c-9d7e-9f1a3b5c7d9e";
  submit_victim(id, "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  ASSERT_TRUE(thanhhoa_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));

  // An administrator takes the agreement away while the copy waits for its release.
  auto changed = admin(alice_, "PUT", "/admin/v1/partners/kh-ratanakiri",
                       R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                       R"("endpoint":"https://127.0.0.1:)" +
                           std::to_string(ratanakiri_->port()) + R"(/v1/messages"})");
  ASSERT_EQ(changed.status, 200) << changed.body;

  ASSERT_EQ(admin(alice_, "POST", "/admin/v1/held/" + id + "/kh-ratanakiri/approve").status, 200);
  auto released = admin(bob_, "POST", "/admin/v1/held/" + id + "/kh-ratanakiri/approve");
  ASSERT_EQ(released.status, 200) << released.body;
  EXPECT_EQ(json::get_string(parse(released.body), "outcome"), "released");

  ASSERT_EQ(state_when(id, "kh-ratanakiri", "dead"), "dead");
  EXPECT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "lastError"),
            "agreement-withdrawn");
  EXPECT_EQ(ratanakiri_->stats().requests, 0u);
  EXPECT_FALSE(ratanakiri_->has(id));
  EXPECT_EQ(dead_audit("kh-ratanakiri"),
            (std::vector<std::string>{"agreement-withdrawn/agreement-withdrawn/victim-data"}));
}

}  // namespace
}  // namespace mxgw::test
