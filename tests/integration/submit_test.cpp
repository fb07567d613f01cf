// Submitting canonical messages: 202 and durable, idempotent, and every refusal precise and
// harmless (nothing stored).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <rapidjson/document.h>

#include <regex>

#include "gateway/store/sqlite_store.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

constexpr const char* id_a = "0b7f6a52-3c1d-4e8f-9a2b-6c5d4e3f2a10";

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  return doc;
}

// The pointers listed in a problem document's `errors`.
std::vector<std::string> pointers(const std::string& body) {
  std::vector<std::string> out;
  auto doc = parse(body);
  if (doc.IsObject() && doc.HasMember("errors")) {
    for (const auto& e : doc["errors"].GetArray()) {
      out.emplace_back(e["pointer"].GetString());
    }
  }
  return out;
}

class Submit : public gateway_fixture {
 protected:
  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
    ratanakiri_ = partner_client("kh-ratanakiri");
  }

  void expect_problem(const cli::client_result& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body << r.error;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "",
              "application/problem+json");
    auto doc = parse(r.body);
    ASSERT_TRUE(doc.IsObject()) << r.body;
    EXPECT_EQ(std::string(doc["type"].GetString()), "urn:mxgw:problem:" + type);
    EXPECT_EQ(doc["status"].GetInt(), status);
    EXPECT_TRUE(doc.HasMember("title") && doc.HasMember("detail"));
  }

  cli::client_tls gialai_, ratanakiri_;
};

TEST_F(Submit, ValidMessageIsAcceptedStoredAndVisibleToItsSender) {
  auto r = post(gialai_, example("victim.identification", id_a));
  ASSERT_EQ(r.status, 202) << r.body << r.error;
  auto doc = parse(r.body);
  EXPECT_EQ(std::string(doc["id"].GetString()), id_a);
  EXPECT_EQ(std::string(doc["status"].GetString()), "accepted");
  EXPECT_EQ(r.headers["location"], std::string("/v1/messages/") + id_a);
  EXPECT_EQ(stored_messages(), 1u);

  auto status = get(gialai_, std::string("/v1/messages/") + id_a);
  ASSERT_EQ(status.status, 200) << status.body;
  auto s = parse(status.body);
  EXPECT_EQ(std::string(s["sender"].GetString()), "vn-gialai");
  EXPECT_EQ(std::string(s["type"].GetString()), "victim.identification");
  EXPECT_EQ(std::string(s["acceptedAt"].GetString()), doc["acceptedAt"].GetString());
}

TEST_F(Submit, AnotherPartnerCannotSeeTheMessage) {
  ASSERT_EQ(post(gialai_, example("victim.identification", id_a)).status, 202);
  auto other = get(ratanakiri_, std::string("/v1/messages/") + id_a);
  auto unknown = get(ratanakiri_, "/v1/messages/99999999-9999-4999-8999-999999999999");
  expect_problem(other, 404, "not-found");
  // Indistinguishable from an id that does not exist.
  EXPECT_EQ(other.body, unknown.body);
}

TEST_F(Submit, EveryExampleMessageIsAccepted) {
  for (const char* type :
       {"victim.identification", "person.wanted", "hotline.tip", "verification.request",
        "verification.result", "case.status", "receipt"}) {
    auto r = post(gialai_, example(type));
    EXPECT_EQ(r.status, 202) << type << ": " << r.body << r.error;
  }
  EXPECT_EQ(stored_messages(), 7u);
}

TEST_F(Submit, SenderMismatchIsForbidden) {
  auto r = post(ratanakiri_, example("victim.identification", id_a));
  expect_problem(r, 403, "sender-mismatch");
  EXPECT_EQ(pointers(r.body), std::vector<std::string>{"/sender"});
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(Submit, MalformedJsonIsBadRequest) {
  auto r = post(gialai_, R"({"mx":"1","id":)");
  expect_problem(r, 400, "malformed-json");
  expect_problem(post(gialai_, R"({"mx":"1","mx":"1"})"), 400, "malformed-json");
  expect_problem(post(gialai_, "{\"mx\":\"\xC3\x28\"}"), 400, "malformed-json");
  expect_problem(post(gialai_, std::string(100000, '[') + std::string(100000, ']')), 400,
                 "malformed-json");
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(Submit, SchemaBreachNamesTheField) {
  // A missing required member is named itself, not just its parent.
  std::string missing = std::regex_replace(example("victim.identification", id_a),
                                           std::regex(R"("status": "identified",)"), "");
  auto r = post(gialai_, missing);
  expect_problem(r, 422, "invalid-message");
  EXPECT_EQ(pointers(r.body), std::vector<std::string>{"/body/status"});

  std::string bad_enum = std::regex_replace(example("victim.identification", id_a),
                                            std::regex(R"("sex": "F")"), R"("sex": "female")");
  r = post(gialai_, bad_enum);
  expect_problem(r, 422, "invalid-message");
  EXPECT_EQ(pointers(r.body), std::vector<std::string>{"/body/person/sex"});

  std::string unknown_member =
      std::regex_replace(example("victim.identification", id_a), std::regex(R"("mx": "1",)"),
                         R"("mx": "1", "priority": "high",)");
  r = post(gialai_, unknown_member);
  expect_problem(r, 422, "invalid-message");
  EXPECT_EQ(pointers(r.body), std::vector<std::string>{"/priority"});
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(Submit, DomainRuleBreachesAreAllListed) {
  std::string text = example("victim.identification", id_a);
  text = std::regex_replace(text, std::regex(R"("birthDate": "2001-03")"),
                            R"("birthDate": "2001-02-30")");
  text = std::regex_replace(text, std::regex(R"("nationalities": \["KH"\])"),
                            R"("nationalities": ["XK9"])");
  auto r = post(gialai_, text);
  expect_problem(r, 422, "invalid-message");
  auto p = pointers(r.body);
  // The schema catches the malformed country code first; fix it and the date is caught.
  ASSERT_FALSE(p.empty());
  text = std::regex_replace(text, std::regex(R"("XK9")"), R"("XX")");
  r = post(gialai_, text);
  expect_problem(r, 422, "invalid-message");
  p = pointers(r.body);
  EXPECT_NE(std::find(p.begin(), p.end(), "/body/person/birthDate"), p.end()) << r.body;
  EXPECT_NE(std::find(p.begin(), p.end(), "/body/person/nationalities/0"), p.end()) << r.body;
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(Submit, DuplicateSubmissionGetsTheSameAnswerAndStoresNothingNew) {
  const auto body = example("victim.identification", id_a);
  auto first = post(gialai_, body);
  auto second = post(gialai_, body);
  ASSERT_EQ(first.status, 202);
  EXPECT_EQ(second.status, 202);
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(stored_messages(), 1u);
  EXPECT_NE(log_text().find("\"outcome\":\"duplicate\""), std::string::npos);
}

TEST_F(Submit, SameIdWithAnotherBodyIsAConflict) {
  ASSERT_EQ(post(gialai_, example("victim.identification", id_a)).status, 202);
  auto r = post(gialai_, example("hotline.tip", id_a));
  expect_problem(r, 409, "id-conflict");
  EXPECT_EQ(stored_messages(), 1u);
  auto status = parse(get(gialai_, std::string("/v1/messages/") + id_a).body);
  EXPECT_EQ(std::string(status["type"].GetString()), "victim.identification");
}

TEST_F(Submit, WrongMediaTypeIsRefused) {
  auto r = post(gialai_, example("victim.identification", id_a), "/v1/messages", "text/plain");
  expect_problem(r, 415, "unsupported-media-type");
  r = post(gialai_, example("victim.identification", id_a), "/v1/messages",
           "application/json; charset=latin1");
  expect_problem(r, 415, "unsupported-media-type");
  EXPECT_EQ(post(gialai_, example("victim.identification", id_a), "/v1/messages",
                 "application/json; charset=UTF-8")
                .status,
            202);
}

TEST_F(Submit, UnknownRoutesAndMethodsAreProblems) {
  expect_problem(get(gialai_, "/v2/whatever"), 404, "not-found");
  auto r = get(gialai_, "/v1/messages");
  expect_problem(r, 405, "method-not-allowed");
  EXPECT_EQ(r.headers["allow"], "POST");
  expect_problem(post(gialai_, "{}", "/healthz"), 405, "method-not-allowed");
}

class SubmitSmallLimits : public Submit {
 protected:
  void configure(config::gateway_config& c) override {
    c.listener.limits.max_body_bytes = 64 * 1024;
  }
};

TEST_F(SubmitSmallLimits, BodyOverTheLimitIsTooLarge) {
  std::string big =
      std::regex_replace(example("victim.identification", id_a), std::regex(R"("text": ")"),
                         "\"text\": \"" + std::string(70 * 1024, 'x'));
  auto r = post(gialai_, big);
  expect_problem(r, 413, "body-too-large");
  EXPECT_EQ(stored_messages(), 0u);
  // The limit cut this request only; the next one is served.
  EXPECT_EQ(post(gialai_, example("victim.identification", id_a)).status, 202);
}

class SubmitFullStore : public Submit {
 protected:
  void configure(config::gateway_config& c) override { c.store.max_size_bytes = 256 * 1024; }
};

TEST_F(SubmitFullStore, FullStoreAnswers503WritesNothingAndResumesWhenSpaceReturns) {
  ASSERT_EQ(post(gialai_, example("victim.identification", id_a)).status, 202);
  const std::string padding(15 * 1024, 'p');  // within the narrative's maxLength
  cli::client_result r;
  for (int i = 0; i < 40 && r.status != 503; ++i) {
    char id[37];
    std::snprintf(id, sizeof id, "0b7f6a52-3c1d-4e8f-9a2b-%012d", i + 1);
    auto text = std::regex_replace(example("victim.identification", id), std::regex(R"("text": ")"),
                                   "\"text\": \"" + padding);
    r = post(gialai_, text);
    ASSERT_TRUE(r.status == 202 || r.status == 503) << r.status << r.body;
  }
  expect_problem(r, 503, "store-unavailable");
  EXPECT_EQ(r.headers["retry-after"], "5");
  EXPECT_EQ(get(gialai_, std::string("/v1/messages/") + id_a).status, 200);
  // Nothing of the refused message was written: its id is unknown.
  const std::string refused = "0b7f6a52-3c1d-4e8f-9a2b-999999999999";
  auto big = std::regex_replace(example("victim.identification", refused),
                                std::regex(R"("text": ")"), "\"text\": \"" + padding);
  ASSERT_EQ(post(gialai_, big).status, 503);
  EXPECT_EQ(get(gialai_, "/v1/messages/" + refused).status, 404);
  // Space comes back (an operator archives old messages): the next submission is accepted
  // without a restart.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.store.path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 60000);
    const char* sql =
        "DELETE FROM exclusions WHERE message_id LIKE '0b7f6a52-%';"
        "DELETE FROM deliveries WHERE message_id LIKE '0b7f6a52-%';"
        "DELETE FROM messages WHERE id LIKE '0b7f6a52-%';";
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  EXPECT_EQ(post(gialai_, big).status, 202);
  EXPECT_EQ(get(gialai_, "/v1/messages/" + refused).status, 200);
}

}  // namespace
}  // namespace mxgw::test
