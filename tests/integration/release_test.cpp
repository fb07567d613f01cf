// Four-eyes release end to end: a real gateway holds the copies a release rule names, two
// administrators (known by their certificates) release them through the admin API, and only then
// does the stand-in partner get them; a rejection or a withdrawal means they never leave.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/report/deadlines.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/pipeline/document_edit.hpp"
#include "tests/support/mxgw_process.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(20);

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str());
  return doc;
}

class Release : public gateway_fixture {
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
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "agreements":["victim-data"],
       "endpoint":"https://127.0.0.1:)" + std::to_string(ratanakiri_->port()) +
                                           R"(/v1/messages",)" + ratanakiri_delivery() + R"(},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN",
       "agreements":["victim-data"],
       "endpoint":"https://127.0.0.1:)" + std::to_string(thanhhoa_->port()) +
                                           R"(/v1/messages",)" + delivery + R"(}]})");
    write_file(dir_ / "routing.json", R"({"rules": [], "release": {"approvals": 2, "rules": [
      {"id": "secret-across-border", "match": {"confidentiality": ["secret"]},
       "to": {"crossBorder": true}}]}})");
    c.routing_file = dir_ / "routing.json";
    c.delivery.poll_interval_ms = 20;
    enable_admin(c);
  }

  // Ratanakiri's delivery settings.
  virtual std::string ratanakiri_delivery() const {
    return R"("delivery": {"timeout_ms": 2000, "max_attempts": 5, "max_age_s": 3600,
        "backoff_base_ms": 20, "backoff_cap_ms": 100, "concurrency": 4})";
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
  }

  // The example victim identification to Ratanakiri (across the border) and Thanh Hoa (in
  // Vietnam, like the sender), at `confidentiality`.
  std::string submit_victim(const std::string& id, const std::string& confidentiality) {
    rapidjson::Document doc;
    doc.Parse(example("victim.identification", id).c_str());
    doc["handling"].RemoveMember("releasableTo");
    set_json(doc, "/recipients", R"(["kh-ratanakiri", "vn-thanhhoa"])");
    set_json(doc, "/handling/confidentiality", "\"" + confidentiality + "\"");
    auto r = post(gialai_, json::to_string(doc));
    EXPECT_EQ(r.status, 202) << r.body << r.error;
    return id;
  }

  // The recipient's entry in the sender's status of `id` (Null when absent).
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

  cli::client_result decide(const cli::client_tls& who, const std::string& id,
                            const std::string& action, const std::string& body = {}) {
    return admin(who, "POST", "/admin/v1/held/" + id + "/kh-ratanakiri/" + action, body);
  }

  // The release entries of the audit chain: event, actor and the approvals detail.
  std::vector<std::string> release_audit() {
    auto r = admin(alice_, "GET", "/admin/v1/audit?event=release.*");
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> out;
    auto doc = parse(r.body);
    for (const auto& e : doc["entries"].GetArray()) {
      const auto& entry = e["entry"];
      std::string line = std::string(json::get_string(entry, "event")) + " " +
                         std::string(json::get_string(entry, "actor"));
      if (entry.HasMember("details") && entry["details"].HasMember("approvals")) {
        line += " " + std::string(json::get_string(entry["details"], "approvals"));
      }
      if (entry.HasMember("details") && entry["details"].HasMember("reason")) {
        line += " " + std::string(json::get_string(entry["details"], "reason"));
      }
      out.push_back(line);
    }
    return out;
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_, thanhhoa_;
  cli::client_tls gialai_, alice_, bob_;
};

TEST_F(Release, ASecretCopyCrossesTheBorderOnlyAfterTwoAdministratorsReleaseIt) {
  const auto id = submit_victim("7b2e4c6a-1d3f-4a5b-8c7d-9e0f1a2b3c4d", "secret");
  // The copy within Vietnam goes at once; the one to Cambodia is held and says by which rule.
  ASSERT_TRUE(thanhhoa_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  auto held = recipient_status(id, "kh-ratanakiri");
  ASSERT_TRUE(held.IsObject());
  EXPECT_EQ(json::get_string(held, "state"), "held");
  EXPECT_EQ(json::get_string(held, "heldBy"), "secret-across-border");
  // Nothing has crossed the border yet, not even that the message exists.
  const auto ratanakiri = partner_client("kh-ratanakiri");
  EXPECT_EQ(get(ratanakiri, "/v1/messages/" + id).status, 404);

  auto list = admin(alice_, "GET", "/admin/v1/held");
  ASSERT_EQ(list.status, 200) << list.body;
  auto listed = parse(list.body);
  EXPECT_EQ(listed["required"].GetUint(), 2u);
  ASSERT_EQ(listed["held"].Size(), 1u) << list.body;
  EXPECT_EQ(json::get_string(listed["held"][0], "message"), id);
  EXPECT_EQ(json::get_string(listed["held"][0], "recipient"), "kh-ratanakiri");
  EXPECT_EQ(json::get_string(listed["held"][0], "heldBy"), "secret-across-border");
  EXPECT_EQ(listed["held"][0]["approvals"].Size(), 0u);
  EXPECT_EQ(list.body.find("SOPHEA"), std::string::npos) << "the list is metadata only";

  // The reviewer reads the copy that would leave.
  auto copy = admin(alice_, "GET", "/admin/v1/held/" + id + "/kh-ratanakiri");
  ASSERT_EQ(copy.status, 200) << copy.body;
  auto shown = parse(json::get_string(parse(copy.body), "copy").data());
  ASSERT_TRUE(shown.IsObject()) << copy.body;
  EXPECT_EQ(json::get_string(shown, "id"), id);
  EXPECT_EQ(json::get_string(shown["handling"], "confidentiality"), "secret");
  EXPECT_NE(copy.body.find("SOPHEA"), std::string::npos) << "the reviewer sees the content";

  auto first = decide(alice_, id, "approve");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(json::get_string(parse(first.body), "outcome"), "approved");
  EXPECT_EQ(json::get_string(parse(first.body), "state"), "held");
  // The same administrator cannot be the second pair of eyes.
  auto again = decide(alice_, id, "approve");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(again.body.find("already-approved"), std::string::npos);

  // A later message to the same partner that no rule holds goes past it: the held copy is not
  // merely slow.
  const auto later = submit_victim("8c3f5d7b-2e4a-4b6c-9d8e-0f1a2b3c4d5e", "confidential");
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_TRUE(ratanakiri_->has(later));
  EXPECT_FALSE(ratanakiri_->has(id));
  EXPECT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "state"), "held");

  auto second = decide(bob_, id, "approve");
  ASSERT_EQ(second.status, 200) << second.body;
  auto released = parse(second.body);
  EXPECT_EQ(json::get_string(released, "outcome"), "released");
  ASSERT_EQ(released["approvals"].Size(), 2u);
  EXPECT_EQ(json::get_string(released["approvals"][0], "by"), "admin:alice");
  EXPECT_EQ(json::get_string(released["approvals"][1], "by"), "admin:bob");
  ASSERT_TRUE(ratanakiri_->wait_until([](const auto& s) { return s.unique_ids == 2; }, patience));
  EXPECT_TRUE(ratanakiri_->has(id));
  EXPECT_EQ(state_when(id, "kh-ratanakiri", "delivered"), "delivered");
  EXPECT_EQ(get(ratanakiri, "/v1/messages/" + id).status, 200) << "its own copy, once it had it";
  EXPECT_EQ(decide(bob_, id, "approve").status, 404) << "nothing is held any more";
  EXPECT_EQ(parse(admin(alice_, "GET", "/admin/v1/held").body)["held"].Size(), 0u);

  EXPECT_EQ(release_audit(), (std::vector<std::string>{"release.viewed admin:alice",
                                                       "release.approved admin:alice 1/2",
                                                       "release.released admin:bob 2/2"}));
  // The log names the decisions, never the copy's content.
  const auto log = log_text();
  EXPECT_NE(log.find("release.released"), std::string::npos);
  EXPECT_EQ(log.find("SOPHEA"), std::string::npos);
  EXPECT_EQ(log.find("EXAMPLE-"), std::string::npos);
}

TEST_F(Release, ARejectedCopyNeverLeavesAndTheSenderSeesWhy) {
  const auto id = submit_victim("9d4a6e8c-3f5b-4c7d-8e9f-1a2b3c4d5e6f", "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  // The reason is a code, never free text (it goes on the audit chain and to the sender).
  auto bad = decide(bob_, id, "reject", R"({"reason": "Contains the victim's name"})");
  EXPECT_EQ(bad.status, 422) << bad.body;
  EXPECT_EQ(decide(bob_, id, "reject", "not json").status, 400);
  EXPECT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "state"), "held");

  ASSERT_EQ(decide(alice_, id, "approve").status, 200);
  auto rejected = decide(bob_, id, "reject", R"({"reason": "not-necessary"})");
  ASSERT_EQ(rejected.status, 200) << rejected.body;
  EXPECT_EQ(json::get_string(parse(rejected.body), "outcome"), "rejected");
  auto status = recipient_status(id, "kh-ratanakiri");
  EXPECT_EQ(json::get_string(status, "state"), "rejected");
  EXPECT_EQ(json::get_string(status, "lastError"), "not-necessary");
  EXPECT_EQ(decide(bob_, id, "approve").status, 404);
  EXPECT_EQ(admin(alice_, "GET", "/admin/v1/held/" + id + "/kh-ratanakiri").status, 404);

  // Thanh Hoa had its copy; Ratanakiri never gets one.
  ASSERT_TRUE(thanhhoa_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  EXPECT_EQ(ratanakiri_->stats().requests, 0u);
  EXPECT_EQ(get(partner_client("kh-ratanakiri"), "/v1/messages/" + id).status, 404);
  EXPECT_EQ(release_audit(),
            (std::vector<std::string>{"release.approved admin:alice 1/2",
                                      "release.rejected admin:bob 1/2 not-necessary"}));
}

TEST_F(Release, AWithdrawalTakesAHeldCopyBack) {
  const auto id = submit_victim("0e5b7f9d-4a6c-4d8e-9fa0-2b3c4d5e6f70", "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  rapidjson::Document withdrawal;
  withdrawal.Parse(example("case.status", "1f6c8a0e-5b7d-4e9f-8a01-3c4d5e6f7081").c_str());
  set_json(withdrawal, "/body/status", R"("withdrawn")");
  set_json(withdrawal, "/body/about/messageId", "\"" + id + "\"");
  set_json(withdrawal, "/recipients", R"(["vn-thanhhoa"])");
  const auto thanhhoa_before = thanhhoa_->stats().unique_ids;
  auto r = post(gialai_, json::to_string(withdrawal));
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "state"), "withdrawn");
  EXPECT_EQ(parse(admin(alice_, "GET", "/admin/v1/held").body)["held"].Size(), 0u);
  EXPECT_EQ(decide(alice_, id, "approve").status, 404);
  // Its recipient never had it, so it is not told of the withdrawal either: the notice would say
  // that the message exists. The notice goes to the partner it was addressed to.
  EXPECT_FALSE(recipient_status("1f6c8a0e-5b7d-4e9f-8a01-3c4d5e6f7081", "kh-ratanakiri")
                   .IsObject());
  ASSERT_TRUE(thanhhoa_->wait_until(
      [thanhhoa_before](const auto& s) { return s.unique_ids > thanhhoa_before; }, patience));
  EXPECT_EQ(ratanakiri_->stats().requests, 0U);
}

TEST_F(Release, TheReleaseRoutesAreForAdministratorsOnly) {
  const auto id = submit_victim("2a7d9b1f-6c8e-4f0a-9b12-4d5e6f708192", "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/admin/v1/held"},
           {"GET", "/admin/v1/held/" + id + "/kh-ratanakiri"},
           {"POST", "/admin/v1/held/" + id + "/kh-ratanakiri/approve"},
           {"POST", "/admin/v1/held/" + id + "/kh-ratanakiri/reject"}}) {
    EXPECT_EQ(admin(gialai_, method, target, R"({"reason": "x"})").status, 0) << target;
    EXPECT_EQ(cli::https_request("localhost", port_, gialai_, method, target, "{}").status, 404)
        << target;
  }
  EXPECT_EQ(admin(alice_, "GET", "/admin/v1/held/not-an-id/kh-ratanakiri").status, 404);
  EXPECT_EQ(admin(alice_, "GET", "/admin/v1/held?limit=0").status, 422);
  EXPECT_EQ(admin(alice_, "DELETE", "/admin/v1/held").status, 405);
  EXPECT_EQ(json::get_string(recipient_status(id, "kh-ratanakiri"), "state"), "held");
}

// `mxgw release` as an administrator runs it: each subcommand against the real gateway's admin
// API, its output, and its exit status when the gateway refuses.
TEST_F(Release, TheCommandListsShowsApprovesAndSaysWhatWasRefused) {
  const auto id = submit_victim("4c9f1d3b-8e0a-4b2c-9d34-6f708192a3b4", "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  const auto as = [this](const cli::client_tls& who, std::vector<std::string> args) {
    for (const std::string& option :
         {std::string("--admin-url"), "https://localhost:" + std::to_string(gateway_->admin_port()),
          std::string("--cert"), who.cert.string(), std::string("--key"), who.key.string(),
          std::string("--ca"), who.ca.string()}) {
      args.push_back(option);
    }
    return run_mxgw(args, dir_.path());
  };
  const std::vector<std::string> copy = {"--message", id, "--recipient", "kh-ratanakiri"};
  const auto with = [&copy](std::vector<std::string> head) {
    head.insert(head.end(), copy.begin(), copy.end());
    return head;
  };

  auto r = as(alice_, {"release", "list"});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find(id + "  kh-ratanakiri  victim.identification  from vn-gialai  held by "
                            "secret-across-border"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("approvals 0/2 -"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("SOPHEA"), std::string::npos) << "the list is metadata only";

  r = as(alice_, with({"release", "show"}));
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("SOPHEA"), std::string::npos) << "the copy, for the reviewer";
  EXPECT_NE(r.err.find("copy of " + id + " for kh-ratanakiri"), std::string::npos) << r.err;

  r = as(alice_, with({"release", "approve"}));
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("approved " + id +
                       " to kh-ratanakiri  state held  approvals 1/2 "
                       "admin:alice"),
            std::string::npos)
      << r.out;
  r = as(alice_, with({"release", "approve"}));
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.err.find("409"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("already-approved"), std::string::npos) << r.err;

  r = as(bob_, with({"release", "reject", "--reason", "Not a code"}));
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.err.find("422"), std::string::npos) << r.err;

  r = as(bob_, with({"release", "approve"}));
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("released " + id +
                       " to kh-ratanakiri  state pending  approvals 2/2 "
                       "admin:alice,admin:bob"),
            std::string::npos)
      << r.out;
  r = as(bob_, with({"release", "reject", "--reason", "too-late"}));
  EXPECT_EQ(r.exit_status, 1) << "nothing is held any more";
  EXPECT_NE(r.err.find("404"), std::string::npos) << r.err;
}

// Ratanakiri refuses everything for now (503), and a copy may be tried for at most a second.
class ReleaseAndMaxAge : public Release {
 protected:
  void configure(config::gateway_config& c) override {
    Release::configure(c);
    c.delivery.breaker_failures = 1000;  // no open circuit keeps it from being tried
  }

  std::string ratanakiri_delivery() const override {
    return R"("delivery": {"timeout_ms": 2000, "max_attempts": 50, "max_age_s": 1,
        "backoff_base_ms": 20, "backoff_cap_ms": 50, "concurrency": 4})";
  }
};

TEST_F(ReleaseAndMaxAge, ACopyHeldLongerThanItsMaxAgeIsStillTriedOnceReleased) {
  sim::faults always_busy;
  always_busy.always_status = 503;
  ratanakiri_->set_faults(always_busy);
  const auto id = submit_victim("3b8e0c2a-7d9f-4a1b-8c23-5e6f708192a3", "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  // Held for longer than the partner's max_age (real time: the delivery workers read the
  // system clock).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(decide(alice_, id, "approve").status, 200);
  ASSERT_EQ(decide(bob_, id, "approve").status, 200);
  ASSERT_TRUE(
      ratanakiri_->wait_until([](const auto& s) { return s.failures_sent >= 1; }, patience));
  // Its age counts from the release: the first refusal is a retry, not a copy already too old.
  // (The sim counts the refusal before the gateway has recorded it: wait for the record.)
  const std::string query = "/admin/v1/audit?event=delivery.*&partner=kh-ratanakiri&message=" + id;
  auto r = admin(alice_, "GET", query);
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (r.status == 200 && parse(r.body)["entries"].Empty() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    r = admin(alice_, "GET", query);
  }
  ASSERT_EQ(r.status, 200) << r.body;
  const auto entries = parse(r.body);
  ASSERT_GE(entries["entries"].Size(), 1u) << r.body;
  EXPECT_EQ(json::get_string(entries["entries"][0]["entry"], "event"), "delivery.retry") << r.body;
  // And a second later it is dead of its age, as any copy would be.
  EXPECT_EQ(state_when(id, "kh-ratanakiri", "dead"), "dead");
}

}  // namespace
}  // namespace mxgw::test

namespace mxgw::test {
namespace {

// Held longer than deadlines.held_after_hours (one hour; the gateway's clock runs two hours
// ahead): the copy is escalated once, listed with the open escalations and counted in the
// metrics, until an administrator decides on it.
class ReleaseOverdue : public Release {
 protected:
  void configure(config::gateway_config& c) override {
    Release::configure(c);
    c.deadlines.held_after_hours = 1;
    options_.clock = [] { return std::chrono::system_clock::now() + std::chrono::hours(2); };
  }
};

TEST_F(ReleaseOverdue, ACopyHeldTooLongIsEscalatedUntilDecided) {
  const auto id = submit_victim("5d0a2e4c-9f1b-4c3d-8e45-708192a3b4c5", "secret");
  ASSERT_EQ(state_when(id, "kh-ratanakiri", "held"), "held");
  const auto [first, ok] = gateway_->deadlines().sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(first.held_escalated, 1U);
  EXPECT_EQ(gateway_->deadlines().sweep_now().first.held_escalated, 0U);

  auto doc = parse(admin(alice_, "GET", "/admin/v1/escalations").body);
  ASSERT_TRUE(doc.IsObject() && doc["heldCopies"].IsArray());
  ASSERT_EQ(doc["heldCopies"].Size(), 1U);
  const auto& held = doc["heldCopies"][0];
  EXPECT_EQ(json::get_string(held, "messageId"), id);
  EXPECT_EQ(json::get_string(held, "recipient"), "kh-ratanakiri");
  EXPECT_EQ(json::get_string(held, "sender"), "vn-gialai");
  EXPECT_EQ(json::get_string(held, "heldBy"), "secret-across-border");
  EXPECT_FALSE(json::get_string(held, "heldSince").empty());
  EXPECT_EQ(doc["escalations"].Size(), 0U);
  EXPECT_NE(admin(alice_, "GET", "/metrics").body.find("mxgw_release_overdue 1\n"),
            std::string::npos);
  EXPECT_NE(log_text().find("release.overdue"), std::string::npos);
  std::vector<std::string> args = {"escalations"};
  for (const std::string& option :
       {std::string("--admin-url"), "https://localhost:" + std::to_string(gateway_->admin_port()),
        std::string("--cert"), alice_.cert.string(), std::string("--key"), alice_.key.string(),
        std::string("--ca"), alice_.ca.string()}) {
    args.push_back(option);
  }
  const auto listed = run_mxgw(args, dir_.path());
  ASSERT_EQ(listed.exit_status, 0) << listed.err;
  EXPECT_EQ(listed.out.rfind("held " + id +
                                 "  to kh-ratanakiri  from vn-gialai  held by "
                                 "secret-across-border  since ",
                             0),
            0U)
      << listed.out;

  ASSERT_EQ(decide(alice_, id, "reject", R"({"reason": "not-necessary"})").status, 200);
  const auto [after, after_ok] = gateway_->deadlines().sweep_now();
  ASSERT_TRUE(after_ok);
  EXPECT_EQ(after.held_closed, 1U);
  EXPECT_EQ(parse(admin(alice_, "GET", "/admin/v1/escalations").body)["heldCopies"].Size(), 0U);
  EXPECT_EQ(release_audit(),
            (std::vector<std::string>{"release.overdue gateway:mxgw",
                                      "release.rejected admin:alice 0/2 not-necessary",
                                      "release.escalation_closed gateway:mxgw decided"}));
}

}  // namespace
}  // namespace mxgw::test
