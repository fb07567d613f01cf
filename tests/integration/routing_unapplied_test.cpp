// Routing rules stored by another instance that this one cannot apply fail closed: messages are
// refused (503) rather than routed by the rules they replaced, until rules that apply arrive.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <functional>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;

class RoutingUnapplied : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override { enable_admin(config); }

  static rapidjson::Document parse(const std::string& text) {
    rapidjson::Document doc;
    doc.Parse(text.c_str());
    return doc;
  }

  std::string metrics() { return admin(admin_client(), "GET", "/metrics").body; }
};

// Rules naming a partner this instance does not know (another instance has it): valid there,
// not here.
constexpr const char* foreign_rules =
    R"({"rules":[{"id":"to-new-desk","match":{"types":["victim.identification"]},)"
    R"("add":["vn-new-desk"]}]})";

TEST_F(RoutingUnapplied, MessagesAreRefusedUntilRoutingThatAppliesArrives) {
  const auto gialai = partner_client("vn-gialai");
  ASSERT_EQ(
      post(gialai, example("victim.identification", "7d0c6f7e-0000-4000-8000-000000000001")).status,
      202);
  const auto stored = stored_messages();
  const auto version = put_stored_change("routing", "rules", foreign_rules);

  const std::string series =
      R"(mxgw_admin_state_unapplied{kind="routing",key="rules",reason="invalid-routing"} 1)";
  ASSERT_TRUE(eventually([&] { return metrics().find(series) != std::string::npos; }));

  // Refused, not routed by the rules in force before: nothing stored.
  const std::string second = "7d0c6f7e-0000-4000-8000-000000000002";
  auto refused = post(gialai, example("victim.identification", second));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("routing-unavailable"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.headers["retry-after"], "30");
  EXPECT_EQ(stored_messages(), stored);
  EXPECT_NE(metrics().find(R"(mxgw_messages_refused_total{reason="routing-held"})"),
            std::string::npos);
  const auto log = log_text();
  EXPECT_NE(log.find("admin.state_unapplied"), std::string::npos) << log;

  // The admin API says so, shows the last rules that applied, and will not export them.
  auto shown = admin(admin_client(), "GET", "/admin/v1/routing");
  ASSERT_EQ(shown.status, 200) << shown.body;
  auto doc = parse(shown.body);
  ASSERT_FALSE(doc.HasParseError()) << shown.body;
  EXPECT_EQ(std::string(doc["held"].GetString()), "invalid-routing");
  EXPECT_TRUE(doc["document"].IsObject());
  EXPECT_EQ(shown.headers["etag"], "\"" + std::to_string(version) + "\"");
  auto exported = admin(admin_client(), "GET", "/admin/v1/export");
  EXPECT_EQ(exported.status, 409) << exported.body;
  EXPECT_NE(exported.body.find("routing-unapplied"), std::string::npos);

  // Found at start: held from the first request.
  restart();
  EXPECT_EQ(post(gialai, example("victim.identification", second)).status, 503);

  // Rules that apply, put through this instance with the held version's ETag, end it.
  auto replaced = admin(admin_client(), "PUT", "/admin/v1/routing", R"({"rules":[]})",
                        {{"If-Match", shown.headers["etag"]}});
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(post(gialai, example("victim.identification", second)).status, 202);
  EXPECT_EQ(metrics().find(R"(mxgw_admin_state_unapplied{kind="routing")"), std::string::npos);
  EXPECT_FALSE(parse(admin(admin_client(), "GET", "/admin/v1/routing").body).HasMember("held"));
  EXPECT_EQ(admin(admin_client(), "GET", "/admin/v1/export").status, 200);
}

TEST_F(RoutingUnapplied, ADeletedOrUnreadableRoutingDocumentHoldsRoutingToo) {
  const auto gialai = partner_client("vn-gialai");
  put_stored_change("routing", "rules", "");
  ASSERT_TRUE(eventually(
      [&] { return metrics().find(R"(reason="routing-deleted"} 1)") != std::string::npos; }));
  EXPECT_EQ(
      post(gialai, example("victim.identification", "7d0c6f7e-0000-4000-8000-000000000003")).status,
      503);
  put_stored_change("routing", "rules", "{not json");
  EXPECT_TRUE(eventually(
      [&] { return metrics().find(R"(reason="invalid-routing"} 1)") != std::string::npos; }));
  EXPECT_EQ(
      post(gialai, example("victim.identification", "7d0c6f7e-0000-4000-8000-000000000004")).status,
      503);
  // Valid rules stored by another instance end it at this one's next poll.
  put_stored_change("routing", "rules", R"({"rules":[]})");
  EXPECT_TRUE(eventually([&] {
    return post(gialai, example("victim.identification", "7d0c6f7e-0000-4000-8000-000000000005"))
               .status == 202;
  }));
}

}  // namespace
}  // namespace mxgw::test
