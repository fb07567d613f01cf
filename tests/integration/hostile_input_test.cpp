// Hostile documents over real mTLS: each gets its precise refusal and stores nothing, or is
// carried as inert data (never interpreted, never echoed into headers or the log).
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class HostileInput : public gateway_fixture {
 protected:
  std::string message(const std::string& id) { return example("victim.identification", id); }

  /// The message with the JSON text `from` replaced by `to` (the first occurrence).
  std::string with(const std::string& id, const std::string& from, const std::string& to) {
    std::string m = message(id);
    const auto at = m.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? m : m.replace(at, from.size(), to);
  }

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
  }

  cli::client_tls gialai_;
};

TEST_F(HostileInput, JsonNestedAHundredThousandDeepIsRefusedWithoutCrashing) {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  const auto r = post(gialai_, deep);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nest"), std::string::npos) << r.body;
  // Inside a valid envelope too.
  const auto inner = post(gialai_, with("a0000000-0000-4000-8000-000000000001", "\"ref\": \"",
                                        "\"deep\": " + std::string(50'000, '[') +
                                            std::string(50'000, ']') + ", \"ref\": \""));
  EXPECT_EQ(inner.status, 400);
  EXPECT_EQ(stored_messages(), 0U);
}

TEST_F(HostileInput, NumbersBeyondDoubleRangeAreRefusedAndBigIntegersAreNotRounded) {
  const auto huge = post(gialai_, with("a0000000-0000-4000-8000-000000000002", "\"heightCm\": 152",
                                       "\"heightCm\": 1e400"));
  EXPECT_EQ(huge.status, 400);
  // 2^53 + 1 is not silently rounded to 2^53 and accepted: it breaks the field's range, by name.
  const auto big = post(gialai_, with("a0000000-0000-4000-8000-000000000003", "\"heightCm\": 152",
                                      "\"heightCm\": 9007199254740993"));
  EXPECT_EQ(big.status, 422);
  EXPECT_NE(big.body.find("/body/person/physical/heightCm"), std::string::npos) << big.body;
  EXPECT_EQ(stored_messages(), 0U);
}

TEST_F(HostileInput, DuplicateKeysLoneSurrogatesAndInvalidUtf8AreRefused) {
  const std::string id = "a0000000-0000-4000-8000-000000000004";
  EXPECT_EQ(post(gialai_, with(id, "\"mx\": \"1\",", "\"mx\": \"1\", \"mx\": \"1\",")).status,
            400);
  EXPECT_EQ(post(gialai_, with(id, "\"locality\": \"Bar Kaev\"", "\"locality\": \"\\ud800x\""))
                .status,
            400);
  EXPECT_EQ(post(gialai_, with(id, "\"locality\": \"Bar Kaev\"", "\"locality\": \"\\udc00\""))
                .status,
            400);
  EXPECT_EQ(post(gialai_, with(id, "\"locality\": \"Bar Kaev\"", "\"locality\": \"Bar \xC3\x28\""))
                .status,
            400);
  EXPECT_EQ(post(gialai_, with(id, "\"locality\": \"Bar Kaev\"", "\"locality\": \"\xED\xA0\x80\""))
                .status,
            400);  // a surrogate encoded directly in UTF-8 (CESU-8)
  EXPECT_EQ(stored_messages(), 0U);
}

TEST_F(HostileInput, AFiftyMegabyteStringIsCutOffAtTheBodyLimit) {
  const auto huge_string = [&](std::size_t bytes, const std::string& id) {
    return with(id, "\"locality\": \"Bar Kaev\"",
                "\"locality\": \"" + std::string(bytes, 'x') + "\"");
  };
  // 4 MiB: refused as soon as the head announces it, and the answer is read by a client that
  // sends the whole body first (the gateway reads and discards up to 8 MiB before closing).
  EXPECT_EQ(post(gialai_, huge_string(4 * 1024 * 1024, "a0000000-0000-4000-8000-000000000005"))
                .status,
            413);
  // 50 MiB: a client that insists on sending it all is cut off (413 or a closed connection; the
  // gateway never buffers more than the limit), and the gateway serves the next request.
  const auto r = post(gialai_, huge_string(50 * 1024 * 1024, "a0000000-0000-4000-8000-000000000015"));
  EXPECT_TRUE(r.status == 413 || r.status == 0) << r.status;
  EXPECT_EQ(post(gialai_, message("a0000000-0000-4000-8000-000000000025")).status, 202);
  EXPECT_EQ(stored_messages(), 1U);
}

TEST_F(HostileInput, ControlCharactersAndBidiOverridesAreInertData) {
  const std::string id = "a0000000-0000-4000-8000-000000000006";
  // CRLF + a fake header, ANSI escapes, and a right-to-left override inside a name.
  std::string m = with(id, "\"locality\": \"Bar Kaev\"",
                       "\"locality\": \"Bar\\r\\nX-Injected: 1\\r\\n\\u001b[31mKaev\\u001b[0m\"");
  m = std::regex_replace(m, std::regex("\"Phia\""), "\"\\u202ePhia\\u202c\"");
  const auto r = post(gialai_, m);
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.headers.count("x-injected"), 0U);
  const auto status = get(gialai_, "/v1/messages/" + id);
  EXPECT_EQ(status.status, 200);
  EXPECT_EQ(status.headers.count("x-injected"), 0U);
  EXPECT_EQ(status.body.find("Phia"), std::string::npos);  // the status view holds no content
  stop();
  const std::string log = log_text();
  EXPECT_EQ(log.find("X-Injected"), std::string::npos);
  EXPECT_EQ(log.find('\x1b'), std::string::npos);
  EXPECT_EQ(log.find("\xE2\x80\xAE"), std::string::npos);  // U+202E
  // Every log line is one JSON object: nothing broke a line.
  std::size_t start = 0;
  while (start < log.size()) {
    const auto end = log.find('\n', start);
    const std::string line = log.substr(start, end - start);
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_EQ(line.back(), '}') << line;
    start = end == std::string::npos ? log.size() : end + 1;
  }
}

TEST_F(HostileInput, AControlCharacterInAHeaderOrTargetIsRefused) {
  const auto r = post(gialai_, message("a0000000-0000-4000-8000-000000000007"),
                      "/v1/messages%0d%0aX-Injected:%201");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.count("x-injected"), 0U);
  EXPECT_EQ(stored_messages(), 0U);
}

}  // namespace
}  // namespace mxgw::test
