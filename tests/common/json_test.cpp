// Untrusted JSON parsing: what RapidJSON alone would accept and we refuse.
#include "gateway/common/json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

std::optional<mxgw::json::parse_error> parse(const std::string& text) {
  rapidjson::Document doc;
  return mxgw::json::parse_untrusted(text, doc);
}

TEST(JsonParse, AcceptsAWellFormedObject) {
  rapidjson::Document doc;
  EXPECT_FALSE(mxgw::json::parse_untrusted(R"({"a":[1,2,{"b":"c"}],"d":null})", doc));
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["a"][2]["b"].GetString(), std::string("c"));
}

TEST(JsonParse, RefusesDuplicateMemberNames) {
  auto error = parse(R"({"id":"a","x":{"k":1,"k":2}})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->reason, "duplicate member name");
}

TEST(JsonParse, SameNameInDifferentObjectsIsFine) {
  EXPECT_FALSE(parse(R"({"k":{"k":1},"j":{"k":2}})"));
}

TEST(JsonParse, RefusesNestingBeyondTheLimit) {
  std::string deep(65, '[');
  deep += std::string(65, ']');
  auto error = parse(deep);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->reason, "nesting deeper than the limit");
  std::string ok(64, '[');
  ok += std::string(64, ']');
  EXPECT_FALSE(parse(ok));
}

TEST(JsonParse, SurvivesHundredThousandDeepWithoutStackGrowth) {
  std::string deep(100000, '[');
  EXPECT_TRUE(parse(deep));
}

TEST(JsonParse, RefusesInvalidUtf8) {
  EXPECT_TRUE(parse("{\"a\":\"\xC3\x28\"}"));
  EXPECT_TRUE(parse("{\"a\":\"\xED\xA0\x80\"}"));  // an encoded lone surrogate
}

TEST(JsonParse, RefusesLoneSurrogateEscapesButKeepsPairs) {
  rapidjson::Document doc;
  for (const char* text : {R"({"a":"\udc00"})", R"({"a":"x\udfffy"})", R"({"\udc00":1})",
                           R"({"a":"\ud800"})", R"({"a":"\ud800\u0041"})"}) {
    const auto error = mxgw::json::parse_untrusted(text, doc);
    EXPECT_TRUE(error.has_value()) << text;
  }
  const auto error = mxgw::json::parse_untrusted(R"({"a":"\ud83d\ude00"})", doc);  // a pair: U+1F600
  ASSERT_FALSE(error.has_value()) << error->reason;
  EXPECT_STREQ(doc["a"].GetString(), "\xF0\x9F\x98\x80");
}

TEST(JsonParse, RefusesNumbersBeyondDoubleRangeAndNaN) {
  EXPECT_TRUE(parse(R"({"a":1e400})"));
  EXPECT_TRUE(parse(R"({"a":NaN})"));
}

TEST(JsonParse, RefusesTrailingGarbageAndEmptyInput) {
  EXPECT_TRUE(parse(R"({"a":1} x)"));
  EXPECT_TRUE(parse(""));
}

TEST(JsonParse, EscapesPointerTokens) {
  EXPECT_EQ(mxgw::json::escape_pointer_token("a/b~c"), "a~1b~0c");
}

}  // namespace
