// The authorisation matrix over real mTLS: every partner asks for the status of every message
// (its own, those addressed to it, everyone else's, and ids that do not exist). A partner sees a
// message only as its sender or as one of its recipients; every other request gets exactly the
// answer an unknown id gets, so nobody learns whether someone else's message exists.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class AuthorizationMatrix : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override {
    config.delivery.enabled = false;  // stored for delivery; nobody needs to be reachable
    // Three receive hotline tips; Stung Treng receives no hotline tips (routing excludes it: named,
    // but not a recipient, so it must not see the message either).
    const std::string agreed =
        R"("agreements":["victim-data"],"purposes":["investigation","victim-protection"],)"
        R"("endpoint":"https://127.0.0.1:9/v1/messages")";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",)" + agreed + R"(},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison desk","country":"VN",)" + agreed + R"(},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)" + agreed + R"(},
      {"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH",
       "endpoint":"https://127.0.0.1:9/v1/messages","receives":["receipt","case.status"]}]})");
  }
};

/// The 404 answer without what legitimately differs between two requests (nothing should).
std::string comparable(const cli::client_result& r) {
  return std::to_string(r.status) + " " + r.body;
}

TEST_F(AuthorizationMatrix, OnlySenderAndRecipientsSeeAMessageAndOthersCannotTellItExists) {
  const std::vector<std::string> partners = {"vn-gialai", "vn-thanhhoa", "kh-ratanakiri",
                                             "kh-stungtreng"};
  std::map<std::string, cli::client_tls> tls;
  for (const auto& p : partners) {
    tls[p] = partner_client(p);
  }
  // Each partner sends one hotline tip addressed to the next partner in the list.
  struct sent {
    std::string id, sender, recipient;
  };
  std::vector<sent> messages;
  for (std::size_t i = 0; i < partners.size(); ++i) {
    const std::string id = "b0000000-0000-4000-8000-00000000000" + std::to_string(i);
    const std::string& sender = partners[i];
    const std::string& recipient = partners[(i + 1) % partners.size()];
    std::string body = example("hotline.tip", id);
    body = std::regex_replace(body, std::regex(R"("sender": "[a-z-]+")"),
                              "\"sender\": \"" + sender + "\"");
    body = std::regex_replace(body, std::regex(R"("recipients": \[[^\]]*\])"),
                              "\"recipients\": [\"" + recipient + "\"]");
    const auto r = post(tls[sender], body);
    ASSERT_EQ(r.status, 202) << sender << ": " << r.body;
    messages.push_back({id, sender, recipient});
  }

  // Whether each named recipient got a copy: policy may exclude it (no victim-data agreement,
  // a minor); an excluded partner is not a recipient and must not see the message either.
  std::map<std::string, bool> delivered_to_recipient;
  for (const auto& m : messages) {
    const auto r = get(tls[m.sender], "/v1/messages/" + m.id);
    ASSERT_EQ(r.status, 200) << r.body;
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    ASSERT_TRUE(doc.IsObject());
    bool found = false;
    for (const auto& row : doc["recipients"].GetArray()) {
      found = found || std::string(row["partner"].GetString()) == m.recipient;
    }
    delivered_to_recipient[m.id] = found;
  }
  std::size_t recipient_views = 0;
  for (const auto& viewer : partners) {
    const auto unknown = get(tls[viewer], "/v1/messages/b0000000-0000-4000-8000-0000000000ff");
    ASSERT_EQ(unknown.status, 404);
    for (const auto& m : messages) {
      const auto r = get(tls[viewer], "/v1/messages/" + m.id);
      SCOPED_TRACE(viewer + " asks for the message " + m.sender + " sent to " + m.recipient);
      if (viewer == m.sender || (viewer == m.recipient && delivered_to_recipient[m.id])) {
        recipient_views += viewer == m.recipient ? 1 : 0;
        ASSERT_EQ(r.status, 200) << r.body;
        rapidjson::Document doc;
        doc.Parse(r.body.c_str());
        ASSERT_TRUE(doc.IsObject());
        const auto& recipients = doc["recipients"];
        if (viewer == m.recipient) {
          // A recipient sees its own row only, and no exclusions.
          ASSERT_EQ(recipients.Size(), 1U) << r.body;
          EXPECT_STREQ(recipients[0]["partner"].GetString(), viewer.c_str());
          EXPECT_FALSE(doc.HasMember("excluded")) << r.body;
        }
      } else {
        // Byte for byte the answer to an id that does not exist (apart from the id asked for,
        // which the 404 does not echo).
        EXPECT_EQ(comparable(r), comparable(unknown));
      }
      // Upper-case spellings of the id are the same id, with the same rules.
      std::string upper = m.id;
      for (auto& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      const auto again = get(tls[viewer], "/v1/messages/" + upper);
      EXPECT_EQ(again.status, r.status);
    }
  }
  EXPECT_GT(recipient_views, 0U) << "no recipient view was exercised";
  EXPECT_FALSE(delivered_to_recipient[messages[2].id]) << "Stung Treng should have been excluded";
}

}  // namespace
}  // namespace mxgw::test
