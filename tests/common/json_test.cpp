// Untrusted JSON parsing: what RapidJSON alone would accept and we refuse.
#include "gateway/common/json.hpp"

#include <gtest/gtest.h>

#include <cstdint>
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

// The reader parses a copy of the text in place, and a thread reuses that copy for the next
// parse: a document's names and strings (escaped ones too) are its own, and so are values copied
// out of it into another document, whatever is parsed afterwards.
TEST(JsonParse, ADocumentOwnsItsStringsWhateverIsParsedNext) {
  rapidjson::Document first;
  ASSERT_FALSE(mxgw::json::parse_untrusted(
      R"({"name":"Tr\u1ea7n Th\u1ecb Hoa","n\"ame2":"a long string of more than sixteen bytes"})",
      first));
  rapidjson::Document copied;
  copied.CopyFrom(first, copied.GetAllocator());
  rapidjson::Document moved_into;
  moved_into.SetObject();
  {
    rapidjson::Document source;
    ASSERT_FALSE(
        mxgw::json::parse_untrusted(R"({"k":"short","l":"another long string value"})", source));
    moved_into.AddMember("k", source["k"], moved_into.GetAllocator());
    moved_into.AddMember("l", rapidjson::Value(source["l"], moved_into.GetAllocator()),
                         moved_into.GetAllocator());
  }
  rapidjson::Document second;
  ASSERT_FALSE(mxgw::json::parse_untrusted(
      R"({"xxxxxxxxxxxxxxx":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"})",
      second));
  EXPECT_EQ(std::string(first["name"].GetString()), "Tr\xE1\xBA\xA7n Th\xE1\xBB\x8B Hoa");
  EXPECT_EQ(std::string(first["n\"ame2"].GetString()), "a long string of more than sixteen bytes");
  EXPECT_EQ(std::string(copied["name"].GetString()), "Tr\xE1\xBA\xA7n Th\xE1\xBB\x8B Hoa");
  EXPECT_EQ(std::string(copied.MemberBegin()->name.GetString()), "name");
  EXPECT_EQ(std::string(moved_into["l"].GetString()), "another long string value");
  EXPECT_EQ(std::string(moved_into["k"].GetString()), "short");
}

TEST(JsonParse, RefusesDuplicateMemberNames) {
  auto error = parse(R"({"id":"a","x":{"k":1,"k":2}})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->reason, "duplicate member name");
}

TEST(JsonParse, SameNameInDifferentObjectsIsFine) {
  EXPECT_FALSE(parse(R"({"k":{"k":1},"j":{"k":2}})"));
}

TEST(JsonParse, DuplicatesAreFoundAfterANestedObjectAndInLargeObjects) {
  // The parent's names are still known after a child object closed.
  EXPECT_TRUE(parse(R"({"a":1,"b":{"a":1,"c":[{"a":1}]},"a":2})"));
  // Names of a closed sibling do not count.
  EXPECT_FALSE(parse(R"([{"a":1,"b":2},{"b":1,"a":2}])"));
  // An object with many members (past the linear comparison), duplicate first, middle and last;
  // and its nested objects still checked on their own.
  const auto members = [](int count, const std::string& extra) {
    std::string text = "{";
    for (int i = 0; i < count; ++i) {
      text += "\"m" + std::to_string(i) + "\":{\"x\":1,\"y\":" + std::to_string(i) + "},";
    }
    return text + extra + "}";
  };
  EXPECT_FALSE(parse(members(100, R"("last":true)")));
  for (const char* dup : {R"("m0":1)", R"("m50":1)", R"("m99":1)"}) {
    auto error = parse(members(100, dup));
    ASSERT_TRUE(error) << dup;
    EXPECT_EQ(error->reason, "duplicate member name");
  }
  auto nested = parse(members(40, R"("z":{"q":1,"q":2})"));
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->reason, "duplicate member name");
  // Exactly at the switch-over (16 and 17 members).
  EXPECT_TRUE(parse(members(16, R"("m15":0)")));
  EXPECT_TRUE(parse(members(17, R"("m16":0)")));
  EXPECT_FALSE(parse(members(17, R"("m17":0)")));
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
  // Even when a caller asks for no limit at all: the recursive reader stops at 1,024 levels.
  rapidjson::Document doc;
  const auto error = mxgw::json::parse_untrusted(deep, doc, {.max_depth = SIZE_MAX});
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->reason, "nesting deeper than the limit");
  EXPECT_FALSE(mxgw::json::parse_untrusted(std::string(1024, '[') + std::string(1024, ']'), doc,
                                           {.max_depth = SIZE_MAX}));
}

TEST(JsonParse, RefusesInvalidUtf8) {
  EXPECT_TRUE(parse("{\"a\":\"\xC3\x28\"}"));
  EXPECT_TRUE(parse("{\"a\":\"\xED\xA0\x80\"}"));  // an encoded lone surrogate
}

// The encoding is checked in one pass before the parse; each malformed form is refused at the
// offset of its first byte, wherever it is (in a string, a name, or between values).
TEST(JsonParse, RefusesEveryMalformedUtf8FormAtItsOffset) {
  for (const char* const bad_bytes :
       {"\x80", "\xBF", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xE0\x9F\xBF",
        "\xED\xA0\x80", "\xED\xBF\xBF", "\xF0\x80\x80\xAF", "\xF0\x8F\xBF\xBF",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\xE2\x82", "\xE2\x28\xA1",
        "\xF0\x9F\x98"}) {
    const std::string bad = bad_bytes;
    // Long enough that the malformed bytes come after an eight-byte ASCII run, and at the end.
    for (const std::string& text : {"{\"abcdefghijkl\":\"" + bad + "\"}", "{\"" + bad + "\":1}",
                                    "[1,2,3,4,5,6,7,8] " + bad, "\"0123456789" + bad}) {
      const auto error = parse(text);
      ASSERT_TRUE(error.has_value()) << text;
      EXPECT_EQ(error->reason, "invalid UTF-8") << text;
      EXPECT_EQ(error->offset, text.find(bad)) << text;
    }
  }
}

TEST(JsonParse, AcceptsEveryWellFormedUtf8LengthAndItsBoundaries) {
  rapidjson::Document doc;
  // U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF, Khmer, Lao.
  const std::string text =
      "{\"a\":\"\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
      "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF \xE1\x9E\x80 \xE0\xBA\x81\"}";
  const auto error = mxgw::json::parse_untrusted(text, doc);
  ASSERT_FALSE(error.has_value()) << error->reason << " at " << error->offset;
  EXPECT_EQ(doc["a"].GetString(), text.substr(6, text.size() - 8));
}

TEST(JsonParse, RefusesANulByteAnywhere) {
  for (const std::string& text : {std::string("{\"a\":\"x\0y\"}", 11), std::string("{}\0", 3),
                                 std::string("{\"a\":1,\"abcdefgh\":\"\0\"}", 21)}) {
    const auto error = parse(text);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->reason, "a NUL byte");
    EXPECT_EQ(error->offset, text.find('\0'));
  }
}

TEST(JsonParse, SkipsAByteOrderMarkAndCountsItInOffsets) {
  rapidjson::Document doc;
  EXPECT_FALSE(mxgw::json::parse_untrusted("\xEF\xBB\xBF{\"a\":1}", doc));
  EXPECT_EQ(doc["a"].GetInt(), 1);
  const auto error = parse("\xEF\xBB\xBF{\"a\":}");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->offset, 8U);  // the '}' where a value was expected
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

// The byte ED also leads U+D000..U+D7FF (Hangul), which is fine: the check goes on past it to a
// surrogate later in the same string, and finds one at either end of a long string.
TEST(JsonParse, FindsASurrogateEscapeAfterLegitimateEdBytesAnywhereInAString) {
  rapidjson::Document doc;
  const std::string hangul = "\xED\x9F\xBF";  // U+D7FF, the last code point before the surrogates
  const std::string filler(40, 'x');
  for (const std::string& value :
       {hangul + R"(\udc00)", R"(\uD7FF)" + filler + R"(\udfff)", R"(\udc01)" + filler + hangul,
        filler + hangul + filler + R"(\udc02)"}) {
    const std::string text = R"({"a":")" + value + R"("})";
    const auto error = mxgw::json::parse_untrusted(text, doc);
    ASSERT_TRUE(error.has_value()) << text;
    EXPECT_EQ(error->reason, "a lone UTF-16 surrogate escape") << text;
  }
  for (const std::string& value :
       {hangul, R"(\uD7FF)" + filler + hangul, filler + hangul + filler}) {
    const std::string text = R"({")" + value + R"(":")" + value + R"("})";
    const auto error = mxgw::json::parse_untrusted(text, doc);
    EXPECT_FALSE(error.has_value()) << text << ": " << error->reason;
  }
}

// A thread reuses the duplicate check's buffers: a parse refused deep inside objects (with one
// object past the linear comparison) leaves nothing that changes what the next parse decides.
TEST(JsonParse, ARefusedParseLeavesNothingForTheNext) {
  std::string big = "{";
  for (int i = 0; i < 30; ++i) {
    big += "\"m" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  }
  for (const std::string& refused :
       {big + R"("deep":{"k":1,"k":2}})", big + R"("deep":{"k":[1,}})", big + R"("m3":0})"}) {
    ASSERT_TRUE(parse(refused)) << refused;
    EXPECT_FALSE(parse(R"({"k":1,"m3":{"k":2},"deep":0})"));
    EXPECT_FALSE(parse(big + R"("last":0})"));
    auto duplicate = parse(R"({"m3":1,"m3":2})");
    ASSERT_TRUE(duplicate);
    EXPECT_EQ(duplicate->reason, "duplicate member name");
  }
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
