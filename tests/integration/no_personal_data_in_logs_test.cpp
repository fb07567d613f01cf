// Messages full of personal data, accepted and refused in every way, leave none of it in the log
// (and none in clear text in the store's files).
#include <gtest/gtest.h>

#include <regex>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class NoPersonalDataInLogs : public gateway_fixture {};

TEST_F(NoPersonalDataInLogs, NamesDatesDocumentsAndNarrativesNeverReachTheLog) {
  // Markers that stand for personal data, planted in names, dates, documents and narratives.
  const std::vector<std::pair<std::string, std::string>> plants = {
      {R"("KUMRU")", R"("PIIFAMILYNAMEQX")"},          {R"("SOPHEA")", R"("PIIGIVENNAMEQX")"},
      {R"("EXAMPLE-0001")", R"("PIIDOCNUMBERQX")"},    {R"("2001-03")", R"("1987-06-15")"},
      {R"("text": ")", R"("text": "PIINARRATIVEQX )"},
  };
  std::string message = example("victim.identification", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d");
  for (const auto& [from, to] : plants) {
    message = std::regex_replace(message, std::regex(from), to);
  }
  auto gialai = partner_client("vn-gialai");
  auto ratanakiri = partner_client("kh-ratanakiri");

  EXPECT_EQ(post(gialai, message).status, 202);      // accepted
  EXPECT_EQ(post(gialai, message).status, 202);      // duplicate
  EXPECT_EQ(post(ratanakiri, message).status, 403);  // sender mismatch
  std::string breach =
      std::regex_replace(message, std::regex(R"("sex": "F")"), R"("sex": "PIISEXQX")");
  breach = std::regex_replace(breach, std::regex("7a6b5c4d"), "8a6b5c4d");
  EXPECT_EQ(post(gialai, breach).status, 422);                                 // schema breach
  EXPECT_EQ(post(gialai, message.substr(0, message.size() / 2)).status, 400);  // malformed
  // Personal data as a member name, which a schema error would point at.
  std::string odd_key =
      std::regex_replace(message, std::regex(R"("mx": "1",)"), R"("mx": "1", "PIIKEYNAMEQX": 1,)");
  odd_key = std::regex_replace(odd_key, std::regex("7a6b5c4d"), "9a6b5c4d");
  EXPECT_EQ(post(gialai, odd_key).status, 422);
  EXPECT_EQ(post(gialai, message, "/v1/messages", "text/plain").status, 415);

  stop();  // every handler has run: the log is complete
  const std::string log = log_text();
  ASSERT_NE(log.find("message.accepted"), std::string::npos) << "the log was not written";
  for (const char* marker : {"PIIFAMILYNAMEQX", "PIIGIVENNAMEQX", "PIIDOCNUMBERQX", "1987-06-15",
                             "PIINARRATIVEQX", "PIISEXQX", "PIIKEYNAMEQX", "គំរូ", "សុភា"}) {
    EXPECT_EQ(log.find(marker), std::string::npos) << "found in the log: " << marker;
  }
  // Nor the store's files in clear text: bodies and payloads are sealed at rest.
  ASSERT_EQ(stored_messages(), 1U);
  for (const auto& entry : std::filesystem::directory_iterator(config_.store.path.parent_path())) {
    const std::string bytes = read_file(entry.path());
    for (const char* marker : {"PIIFAMILYNAMEQX", "PIIGIVENNAMEQX", "PIIDOCNUMBERQX",
                               "PIINARRATIVEQX"}) {
      EXPECT_EQ(bytes.find(marker), std::string::npos) << marker << " in " << entry.path();
    }
  }
}

}  // namespace
}  // namespace mxgw::test
