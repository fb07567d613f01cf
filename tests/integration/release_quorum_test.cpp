// How many administrators release a held copy, end to end over the admin API: a copy needs the
// approvals the routing asked for when it was held, however few the routing asks for when it is
// decided (one administrator cannot lower `release.approvals`, release the copy alone and put the
// figure back); no decision is taken while this instance's routing is held (the figure in force
// is not known here); and the routing.replaced record says the release settings before and after.
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

/// A routing document that holds secret copies across the border until `approvals`
/// administrators release them.
std::string routing_with(int approvals) {
  return R"({"rules": [], "release": {"approvals": )" + std::to_string(approvals) +
         R"(, "rules": [{"id": "secret-across-border", "match": {"confidentiality": ["secret"]},
         "to": {"crossBorder": true}}]}})";
}

class ReleaseQuorum : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    sim::partner_sim_options options = sim_options();
    options.keep_bodies = true;
    ratanakiri_ = std::make_unique<sim::partner_sim>(options);
    ratanakiri_->start();
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "agreements":["victim-data"],
       "endpoint":"https://127.0.0.1:)" + std::to_string(ratanakiri_->port()) +
                                           R"(/v1/messages",
       "delivery": {"timeout_ms": 2000, "max_attempts": 5, "max_age_s": 3600,
                    "backoff_base_ms": 20, "backoff_cap_ms": 100, "concurrency": 4}}]})");
    write_file(dir_ / "routing.json", routing_with(approvals_in_file()));
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
    enable_admin(c);
  }

  virtual int approvals_in_file() const { return 2; }

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
    alice_ = admin_client("alice");
    bob_ = admin_client("bob");
    carol_ = admin_client("carol");
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
  }

  // A secret victim identification (a child's, in the example) for Ratanakiri, across the border.
  std::string submit_secret(const std::string& id) {
    rapidjson::Document doc;
    doc.Parse(example("victim.identification", id).c_str());
    doc["handling"].RemoveMember("releasableTo");
    set_json(doc, "/recipients", R"(["kh-ratanakiri"])");
    set_json(doc, "/handling/confidentiality", R"("secret")");
    auto r = post(gialai_, json::to_string(doc));
    EXPECT_EQ(r.status, 202) << r.body << r.error;
    return id;
  }

  // The state of the copy for Ratanakiri as the sender sees it.
  std::string copy_state(const std::string& id) {
    auto doc = parse(get(gialai_, "/v1/messages/" + id).body);
    if (doc.IsObject() && doc.HasMember("recipients")) {
      for (auto& r : doc["recipients"].GetArray()) {
        if (json::get_string(r, "partner") == "kh-ratanakiri") {
          return std::string(json::get_string(r, "state"));
        }
      }
    }
    return {};
  }

  cli::client_result approve(const cli::client_tls& who, const std::string& id) {
    return admin(who, "POST", "/admin/v1/held/" + id + "/kh-ratanakiri/approve");
  }

  // Replaces the routing through the admin API as `who`.
  void put_routing(const cli::client_tls& who, int approvals) {
    auto r = admin(who, "PUT", "/admin/v1/routing", routing_with(approvals));
    ASSERT_EQ(r.status, 200) << r.body;
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_;
  cli::client_tls gialai_, alice_, bob_, carol_;
};

TEST_F(ReleaseQuorum, OneAdministratorWhoLowersTheApprovalsCannotReleaseACopyHeldBeforeAlone) {
  const auto id = submit_secret("5a1c3e5f-7b9d-4f1a-8c3e-5f7a9b1d3f5a");
  ASSERT_EQ(copy_state(id), "held");

  // Alice lowers release.approvals to 1 on her own, then approves the copy held under 2.
  put_routing(alice_, 1);
  auto alone = approve(alice_, id);
  ASSERT_EQ(alone.status, 200) << alone.body;
  const auto decided = parse(alone.body);
  EXPECT_EQ(json::get_string(decided, "outcome"), "approved") << alone.body;
  EXPECT_EQ(json::get_string(decided, "state"), "held");
  EXPECT_EQ(decided["required"].GetUint(), 2U);
  put_routing(alice_, 2);  // and puts it back: nothing has left meanwhile
  EXPECT_EQ(copy_state(id), "held");
  EXPECT_EQ(ratanakiri_->stats().requests, 0U);

  // The list shows what this copy needs, not only the figure in force.
  put_routing(alice_, 1);
  auto list = parse(admin(alice_, "GET", "/admin/v1/held").body);
  EXPECT_EQ(list["required"].GetUint(), 1U);
  ASSERT_EQ(list["held"].Size(), 1U);
  EXPECT_EQ(list["held"][0]["required"].GetUint(), 2U);

  // A second administrator's approval releases it, and only then does it leave.
  auto second = approve(bob_, id);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(json::get_string(parse(second.body), "outcome"), "released");
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));

  // A copy held while the routing asks for 1 needs 1: the figure still works for new copies.
  const auto later = submit_secret("6b2d4f6a-8c0e-4a2b-9d4f-6a8b0c2e4a6b");
  ASSERT_EQ(copy_state(later), "held");
  auto one = approve(alice_, later);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(json::get_string(parse(one.body), "outcome"), "released");
}

TEST_F(ReleaseQuorum, TheRoutingReplacedRecordSaysTheReleaseSettingsBeforeAndAfter) {
  put_routing(alice_, 1);
  auto r = admin(bob_, "PUT", "/admin/v1/routing", R"({"rules": []})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto audit = admin(bob_, "GET", "/admin/v1/audit?event=routing.replaced");
  ASSERT_EQ(audit.status, 200) << audit.body;
  std::vector<std::string> lines;
  const auto entries = parse(audit.body);  // alive for the loop (a temporary would not be)
  for (const auto& e : entries["entries"].GetArray()) {
    const auto& entry = e["entry"];
    const auto& d = entry["details"];
    std::string line(json::get_string(entry, "actor"));
    for (const char* key :
         {"before.approvals", "before.releaseRules", "after.approvals", "after.releaseRules"}) {
      line += std::string(" ") + key + "=" +
              (d.HasMember(key) ? std::string(json::get_string(d, key)) : "-");
    }
    lines.push_back(line);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "admin:alice before.approvals=2 before.releaseRules=secret-across-border "
                       "after.approvals=1 after.releaseRules=secret-across-border",
                       "admin:bob before.approvals=1 before.releaseRules=secret-across-border "
                       "after.approvals=2 after.releaseRules="}))
      << audit.body;
}

// Routing in force elsewhere asks for three approvals; this instance cannot apply it.
class ReleaseQuorumHeld : public ReleaseQuorum {
 protected:
  int approvals_in_file() const override { return 3; }
};

TEST_F(ReleaseQuorumHeld, NoReleaseDecisionIsTakenWhileThisInstancesRoutingIsHeld) {
  const auto id = submit_secret("7c3e5a7b-9d1f-4b3c-8e5a-7b9c1d3f5b7c");
  ASSERT_EQ(copy_state(id), "held");
  // Another instance stores routing (still three approvals) that names a partner this one does
  // not know: routing is held here.
  const std::string foreign =
      R"({"rules": [{"id": "to-new-desk", "match": {"types": ["victim.identification"]},
          "add": ["vn-new-desk"]}], "release": {"approvals": 3, "rules": [
          {"id": "secret-across-border", "match": {"confidentiality": ["secret"]},
           "to": {"crossBorder": true}}]}})";
  put_stored_change("routing", "rules", foreign);
  ASSERT_TRUE(eventually(
      [&] { return parse(admin(alice_, "GET", "/admin/v1/routing").body).HasMember("held"); }));

  // Two approvals here would have released it under the stand-in figure (2): none is taken.
  for (const auto* who : {&alice_, &bob_}) {
    auto refused = approve(*who, id);
    EXPECT_EQ(refused.status, 503) << refused.body;
    EXPECT_NE(refused.body.find("routing-held"), std::string::npos) << refused.body;
    EXPECT_EQ(refused.headers["retry-after"], "30");
  }
  auto reject = admin(bob_, "POST", "/admin/v1/held/" + id + "/kh-ratanakiri/reject",
                      R"({"reason": "not-necessary"})");
  EXPECT_EQ(reject.status, 503) << reject.body;
  EXPECT_EQ(copy_state(id), "held");
  auto list = parse(admin(alice_, "GET", "/admin/v1/held").body);
  ASSERT_EQ(list["held"].Size(), 1U);
  EXPECT_EQ(list["held"][0]["approvals"].Size(), 0U);
  EXPECT_EQ(ratanakiri_->stats().requests, 0U);

  // Routing that applies here again: decisions resume, against three approvals.
  put_stored_change("routing", "rules", routing_with(3));
  ASSERT_TRUE(eventually(
      [&] { return !parse(admin(alice_, "GET", "/admin/v1/routing").body).HasMember("held"); }));
  auto first = approve(alice_, id);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(json::get_string(parse(first.body), "outcome"), "approved");
  EXPECT_EQ(parse(first.body)["required"].GetUint(), 3U);
  EXPECT_EQ(json::get_string(parse(approve(bob_, id).body), "outcome"), "approved");
  EXPECT_EQ(json::get_string(parse(approve(carol_, id).body), "outcome"), "released");
}

}  // namespace
}  // namespace mxgw::test
