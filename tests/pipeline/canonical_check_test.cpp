// The canonical check against the repository's real schemas, code tables and example messages.
#include "gateway/pipeline/canonical_check.hpp"

#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/pipeline/domain_checks.hpp"
#include "tests/pipeline/document_edit.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {
namespace {

using test::source_dir;

constexpr std::string_view sender = "vn-gialai";

const std::vector<std::string> body_types = {
    "case.status",          "hotline.tip",         "person.wanted",        "receipt",
    "verification.request", "verification.result", "victim.identification"};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

/// An example message from config/examples/ as a document the test may change.
rapidjson::Document example(const std::string& type) {
  return json::parse_file((source_dir() / "config" / "examples" / (type + ".json")).string());
}

/// Sets the value at `pointer` (creating members on the way) to a string.
void set(rapidjson::Document& doc, const std::string& pointer, const std::string& value) {
  rapidjson::Pointer p(pointer.c_str());
  ASSERT_TRUE(p.IsValid()) << pointer;
  p.Set(doc,
        rapidjson::Value(value.data(), static_cast<rapidjson::SizeType>(value.size()),
                         doc.GetAllocator())
            .Move(),
        doc.GetAllocator());
}

using test::set_json;

/// Removes the member at `pointer`; the test fails when there was none to remove.
void erase(rapidjson::Document& doc, const std::string& pointer) {
  ASSERT_TRUE(rapidjson::Pointer(pointer.c_str()).Erase(doc)) << pointer << " is not there";
}

std::vector<std::string> pointers_of(const check_result& result) {
  std::vector<std::string> out;
  for (const auto& e : result.errors) {
    out.push_back(e.pointer);
  }
  return out;
}

/// The reason given for `pointer`, or "" when no error names it.
std::string reason_at(const check_result& result, const std::string& pointer) {
  for (const auto& e : result.errors) {
    if (e.pointer == pointer) {
      return e.reason;
    }
  }
  return "";
}

std::string describe(const check_result& result) {
  std::string out = std::to_string(result.status) + " " + result.problem + " " + result.detail;
  for (const auto& e : result.errors) {
    out += "\n  " + e.pointer + ": " + e.reason;
  }
  return out;
}

class CanonicalCheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<config_problem> problems;
    checker_ = std::make_unique<canonical_checker>(canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    load_problems_ = problems.size();
  }
  static void TearDownTestSuite() { checker_.reset(); }

  void SetUp() override { ASSERT_EQ(load_problems_, 0u) << "the repository's schemas or tables"; }

  static check_result check(const std::string& body, std::string_view partner = sender,
                            const check_limits& limits = {}) {
    rapidjson::Document doc;
    return checker_->check(body, partner, doc, limits);
  }

  static check_result check(const rapidjson::Document& message, std::string_view partner = sender,
                            const check_limits& limits = {}) {
    return check(json::to_string(message), partner, limits);
  }

  /// Expects a 422 whose only error is at `pointer`; returns its reason.
  static std::string expect_only_error_at(const check_result& result, const std::string& pointer) {
    EXPECT_EQ(result.status, 422) << describe(result);
    EXPECT_EQ(result.problem, "invalid-message");
    EXPECT_EQ(pointers_of(result), std::vector<std::string>{pointer}) << describe(result);
    EXPECT_TRUE(result.id.empty()) << "a refused message has no accepted id";
    return reason_at(result, pointer);
  }

  static inline std::unique_ptr<canonical_checker> checker_;
  static inline std::size_t load_problems_ = 0;
};

// --- What passes ---------------------------------------------------------------------------

TEST_F(CanonicalCheck, EveryExampleMessagePasses) {
  std::set<std::string> types_seen;
  for (const auto& entry :
       std::filesystem::directory_iterator(source_dir() / "config" / "examples")) {
    if (entry.path().extension() != ".json") {
      continue;
    }
    SCOPED_TRACE(entry.path().filename().string());
    const std::string text = test::read_file(entry.path());
    rapidjson::Document doc;
    const auto result = checker_->check(text, sender, doc);
    EXPECT_EQ(result.status, 0) << describe(result);
    EXPECT_TRUE(result.errors.empty());
    ASSERT_TRUE(doc.IsObject()) << "the parsed message is handed back";
    EXPECT_EQ(result.id, lower(doc["id"].GetString()));
    EXPECT_EQ(result.type, doc["type"].GetString());
    EXPECT_EQ(result.type, entry.path().stem().string()) << "examples are named after their type";
    EXPECT_EQ(result.created, doc["created"].GetString());
    types_seen.insert(result.type);
  }
  EXPECT_EQ(types_seen, std::set<std::string>(body_types.begin(), body_types.end()))
      << "every message type has an example that passes";
}

TEST_F(CanonicalCheck, UpperCaseIdIsAcceptedAndLowerCased) {
  auto doc = example("victim.identification");
  const std::string id = doc["id"].GetString();
  ASSERT_NE(id, upper(id));
  set(doc, "/id", upper(id));
  const auto result = check(doc);
  ASSERT_EQ(result.status, 0) << describe(result);
  EXPECT_EQ(result.id, lower(id));
}

TEST_F(CanonicalCheck, ReceivedAtWithAnOffsetIsFine) {
  auto doc = example("hotline.tip");
  set(doc, "/body/receivedAt", "2026-11-23T07:28:00-05:30");
  const auto result = check(doc);
  EXPECT_EQ(result.status, 0) << describe(result);
}

TEST_F(CanonicalCheck, LeapDayInALeapYearIsARealDate) {
  auto doc = example("victim.identification");
  set(doc, "/body/person/birthDate", "2024-02-29");
  set(doc, "/created", "2024-02-29T23:59:59Z");
  const auto result = check(doc);
  EXPECT_EQ(result.status, 0) << describe(result);
}

TEST_F(CanonicalCheck, HistoricalVietnameseRegionCodeIsAccepted) {
  // Pick a unit that really was merged in 2025 (validTo and successors set in the region table).
  const auto regions =
      json::parse_file((source_dir() / "config" / "mappings" / "region.json").string());
  std::string historical;
  for (const auto& entry : regions["entries"].GetArray()) {
    const std::string code(json::get_string(entry, "code"));
    if (code.starts_with("VN-") && entry.HasMember("validTo")) {
      historical = code;
      break;
    }
  }
  ASSERT_FALSE(historical.empty()) << "the region table has no merged Vietnamese unit";
  auto doc = example("verification.result");
  set(doc, "/body/matched/homeRegion/code", historical);
  const auto result = check(doc);
  EXPECT_EQ(result.status, 0) << historical << ": " << describe(result);
}

TEST_F(CanonicalCheck, ValuesInsideUnmappedAreNotChecked) {
  auto doc = example("victim.identification");
  set_json(doc, "/unmapped",
           R"({"birthDate": "2023-02-29", "nationalities": ["XX"], "country": "XX",
               "created": "not a time", "lang": "xxx", "script": "Qaaa",
               "homeRegion": {"code": "VN-99"}, "free": {"anything": [1, "two", null]}})");
  const auto result = check(doc);
  EXPECT_EQ(result.status, 0) << describe(result);
}

TEST_F(CanonicalCheck, TheParsedMessageIsHandedBack) {
  rapidjson::Document doc;
  const auto result = checker_->check(
      test::read_file(source_dir() / "config" / "examples" / "receipt.json"), sender, doc);
  ASSERT_EQ(result.status, 0) << describe(result);
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(std::string(doc["body"]["status"].GetString()), "received");
}

// --- Parsing and shape (400, 422) ------------------------------------------------------------

TEST_F(CanonicalCheck, MalformedJsonIs400WithoutEchoingTheBody) {
  const auto result = check(R"({"mx": "1", "narrative": "SECRET-NAME-4711" )");
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(result.problem, "malformed-json");
  EXPECT_TRUE(result.errors.empty());
  EXPECT_EQ(result.detail.find("SECRET-NAME-4711"), std::string::npos) << result.detail;
}

TEST_F(CanonicalCheck, EmptyBodyAndDuplicateMembersAreMalformed) {
  EXPECT_EQ(check("").status, 400);
  EXPECT_EQ(check("   ").status, 400);
  auto doc = example("receipt");
  std::string text = json::to_string(doc);
  ASSERT_EQ(text.front(), '{');
  text.insert(1, R"("mx":"1",)");  // "mx" a second time
  const auto result = check(text);
  EXPECT_EQ(result.status, 400) << describe(result);
  EXPECT_EQ(result.problem, "malformed-json");
}

TEST_F(CanonicalCheck, TopLevelArrayOrScalarIs422AtTheRoot) {
  for (const std::string body : {"[]", R"([{"mx":"1"}])", R"("text")", "42", "null"}) {
    SCOPED_TRACE(body);
    const auto result = check(body);
    EXPECT_EQ(result.status, 422);
    EXPECT_EQ(result.problem, "invalid-message");
    EXPECT_EQ(pointers_of(result), std::vector<std::string>{""});
  }
}

TEST_F(CanonicalCheck, NestingDeeperThanTheLimitIs400) {
  // The receipt example nests two levels deep; `unmapped` is free content, so `extra` arrays
  // inside it make the message exactly 2 + extra levels deep.
  auto with_depth = [](std::size_t depth) {
    auto doc = example("receipt");
    const std::size_t extra = depth - 2;
    set_json(doc, "/unmapped",
             R"({"deep": )" + std::string(extra, '[') + std::string(extra, ']') + "}");
    return json::to_string(doc);
  };
  EXPECT_EQ(check(with_depth(10), sender, {.max_depth = 10}).status, 0);
  const auto refused = check(with_depth(11), sender, {.max_depth = 10});
  EXPECT_EQ(refused.status, 400) << describe(refused);
  EXPECT_EQ(refused.problem, "malformed-json");
  // The default limit is 64.
  EXPECT_EQ(check(with_depth(64)).status, 0);
  EXPECT_EQ(check(with_depth(65)).status, 400);
}

// --- Identity (403) ----------------------------------------------------------------------------

TEST_F(CanonicalCheck, SenderOtherThanThePartnerIs403AtSender) {
  auto doc = example("victim.identification");
  const auto result = check(doc, "kh-ratanakiri");
  EXPECT_EQ(result.status, 403);
  EXPECT_EQ(result.problem, "sender-mismatch");
  EXPECT_EQ(pointers_of(result), std::vector<std::string>{"/sender"});
  EXPECT_TRUE(result.id.empty());
}

TEST_F(CanonicalCheck, SenderIsCheckedBeforeTheSchema) {
  auto doc = example("victim.identification");
  set(doc, "/sender", "kh-ratanakiri");
  erase(doc, "/body/status");
  set(doc, "/unknownMember", "x");
  set(doc, "/body/person/birthDate", "2023-02-29");
  const auto result = check(doc);
  EXPECT_EQ(result.status, 403) << describe(result);
  EXPECT_EQ(pointers_of(result), std::vector<std::string>{"/sender"});
}

TEST_F(CanonicalCheck, MissingOrNonStringSenderIsASchemaBreachNotAMismatch) {
  auto missing = example("receipt");
  erase(missing, "/sender");
  EXPECT_EQ(expect_only_error_at(check(missing), "/sender"), "is required");

  auto number = example("receipt");
  set_json(number, "/sender", "7");
  const auto result = check(number);
  EXPECT_EQ(result.status, 422) << describe(result);
  EXPECT_EQ(pointers_of(result), std::vector<std::string>{"/sender"});
}

// --- Schema (422) ------------------------------------------------------------------------------

struct required_case {
  std::string type;
  std::string pointer;
};

void PrintTo(const required_case& c, std::ostream* out) {
  *out << c.type << " " << c.pointer;
}

class RequiredMember : public CanonicalCheck,
                       public ::testing::WithParamInterface<required_case> {};

TEST_P(RequiredMember, RemovingItIs422AtExactlyThatMember) {
  auto doc = example(GetParam().type);
  erase(doc, GetParam().pointer);
  EXPECT_EQ(expect_only_error_at(check(doc), GetParam().pointer), "is required");
}

// Every member the envelope and body schemas require (pinned here: the contract of mx/1), and a
// few required members of nested objects.
const std::vector<required_case> required_cases = {
    {"receipt", "/mx"},
    {"receipt", "/id"},
    {"receipt", "/type"},
    {"receipt", "/created"},
    {"receipt", "/sender"},
    {"receipt", "/legalBasis"},
    {"receipt", "/handling"},
    {"receipt", "/body"},
    {"victim.identification", "/body/person"},
    {"victim.identification", "/body/status"},
    {"person.wanted", "/body/person"},
    {"person.wanted", "/body/requestedAction"},
    {"hotline.tip", "/body/receivedAt"},
    {"hotline.tip", "/body/channel"},
    {"hotline.tip", "/body/urgency"},
    {"hotline.tip", "/body/summary"},
    {"verification.request", "/body/purpose"},
    {"verification.request", "/body/subject"},
    {"verification.result", "/body/result"},
    {"case.status", "/body/about"},
    {"case.status", "/body/status"},
    {"receipt", "/body/inReplyTo"},
    {"receipt", "/body/status"},
    {"receipt", "/body/received"},
    {"victim.identification", "/handling/confidentiality"},
    {"victim.identification", "/body/person/names"},
    {"victim.identification", "/body/person/names/0/kind"},
    {"hotline.tip", "/evaluation/informationAccuracy"},
    {"hotline.tip", "/body/summary/text"},
    {"person.wanted", "/body/warrants/0/charges"},
};

INSTANTIATE_TEST_SUITE_P(CanonicalCheck, RequiredMember, ::testing::ValuesIn(required_cases),
                         [](const ::testing::TestParamInfo<required_case>& param_info) {
                           std::string name = param_info.param.type + param_info.param.pointer;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) {
                               c = '_';
                             }
                           }
                           return name;
                         });

TEST_F(CanonicalCheck, RequiredCasesCoverEverySchemaRequirement) {
  // If a schema gains a required member, required_cases must gain a case for it.
  std::set<std::string> covered;
  for (const auto& c : required_cases) {
    if (std::count(c.pointer.begin(), c.pointer.end(), '/') == 1) {
      covered.insert("envelope:" + c.pointer.substr(1));
    } else if (c.pointer.starts_with("/body/") &&
               std::count(c.pointer.begin(), c.pointer.end(), '/') == 2) {
      covered.insert(c.type + ":" + c.pointer.substr(6));
    }
  }
  std::set<std::string> in_schemas;
  auto collect = [&](const std::string& name, const std::filesystem::path& file) {
    const auto schema = json::parse_file(file.string());
    ASSERT_TRUE(schema.HasMember("required")) << file;
    for (const auto& member : schema["required"].GetArray()) {
      in_schemas.insert(name + ":" + member.GetString());
    }
  };
  collect("envelope", source_dir() / "config" / "schema" / "envelope.json");
  for (const auto& type : body_types) {
    collect(type, source_dir() / "config" / "schema" / "body" / (type + ".json"));
  }
  EXPECT_EQ(in_schemas, covered);
}

TEST_F(CanonicalCheck, UnknownMemberIsReportedAtItsOwnPointer) {
  for (const std::string pointer : {"/color", "/body/colour", "/body/person/eyeColor",
                                    "/body/person/names/1/middle", "/handling/secrecy"}) {
    SCOPED_TRACE(pointer);
    auto doc = example("victim.identification");
    set(doc, pointer, "x");
    EXPECT_EQ(expect_only_error_at(check(doc), pointer), "is not a known member");
  }
}

TEST_F(CanonicalCheck, EveryUnknownMemberOfTheObjectIsListed) {
  auto doc = example("victim.identification");
  set(doc, "/body/person/eyeColor", "x");
  set(doc, "/body/person/hairColor", "y");
  const auto result = check(doc);
  EXPECT_EQ(result.status, 422);
  const auto got = pointers_of(result);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()),
            (std::set<std::string>{"/body/person/eyeColor", "/body/person/hairColor"}))
      << describe(result);
  EXPECT_EQ(got.size(), 2u);
}

TEST_F(CanonicalCheck, UnknownMemberWithAnObjectValueIsReportedItselfNotItsContents) {
  auto doc = example("victim.identification");
  // "names" is a member the person schema knows; "other" is not. Neither is what is wrong.
  set_json(doc, "/body/person/alias", R"({"names": [], "other": 1})");
  EXPECT_EQ(expect_only_error_at(check(doc), "/body/person/alias"), "is not a known member");
}

TEST_F(CanonicalCheck, PatternBreachIsReported) {
  // Breaches only the schema's pattern can see (no domain rule looks at these members).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/recipients/0", "KH-Ratanakiri"},
      {"/recipients/1", "-stungtreng"},
      {"/handling/releasableTo/0", "kh_ratanakiri"},
      {"/body/linkedPersons/0/name/script", "KHMR"},
      {"/body/person/physical/hairColours/0", "black"},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(pointer + " = " + value);
    auto doc = example("victim.identification");
    set(doc, pointer, value);
    const auto result = check(doc);
    EXPECT_EQ(result.status, 422) << describe(result);
    EXPECT_EQ(pointers_of(result), std::vector<std::string>{pointer}) << describe(result);
  }
  auto recipient = example("receipt");
  set(recipient, "/recipients/0", "KH-Ratanakiri");
  EXPECT_EQ(expect_only_error_at(check(recipient), "/recipients/0"),
            "does not have the required form");
}

TEST_F(CanonicalCheck, PatternsSeeTheWholeStringEvenPastANul) {
  // The partner-id pattern must not stop at an embedded NUL ("\u0000" in JSON).
  auto doc = example("victim.identification");
  set(doc, "/recipients/0", std::string("kh-ratanakiri\0<x>", 17));
  expect_only_error_at(check(doc), "/recipients/0");

  auto href = example("victim.identification");
  set(href, "/body/linkedPersons/0/externalRef/system", std::string("interpol\0 x", 11));
  set(href, "/body/linkedPersons/0/externalRef/id", "2026/1");
  expect_only_error_at(check(href), "/body/linkedPersons/0/externalRef/system");
}

TEST_F(CanonicalCheck, LongestPatternCheckedStringsAreFine) {
  // std::regex matches recursively; the longest pattern-checked strings must not exhaust the stack.
  auto doc = example("receipt");
  set(doc, "/body/status", "rejected");
  set_json(doc, "/body/errors", R"([{"pointer": "", "reason": "is required"}])");
  for (const std::string& pointer : {std::string(1024, '/'), "/" + std::string(1023, 'a')}) {
    set(doc, "/body/errors/0/pointer", pointer);
    EXPECT_EQ(check(doc).status, 0);
  }
  set(doc, "/body/errors/0/pointer", "a" + std::string(1023, '/'));
  expect_only_error_at(check(doc), "/body/errors/0/pointer");
}

TEST_F(CanonicalCheck, MemberNamesInPointersAreEscaped) {
  auto doc = example("receipt");
  set_json(doc, "/body", R"({"inReplyTo": "2c8f1a6d-4b3e-4a95-9f7c-5e0d8b2a1c47",
                            "status": "received", "received": "2026-11-21T02:50:01Z",
                            "a/b~c": 1})");
  expect_only_error_at(check(doc), "/body/a~1b~0c");
}

TEST_F(CanonicalCheck, WrongEnumValueIsReportedWithoutEchoingIt) {
  auto doc = example("victim.identification");
  set(doc, "/body/status", "SECRET-VALUE-0815");
  const auto result = check(doc);
  EXPECT_EQ(expect_only_error_at(result, "/body/status"), "is not one of the allowed values");
  EXPECT_EQ(describe(result).find("SECRET-VALUE-0815"), std::string::npos);

  auto envelope = example("receipt");
  set(envelope, "/legalBasis", "curiosity");
  expect_only_error_at(check(envelope), "/legalBasis");

  auto type = example("receipt");
  set(type, "/type", "chat.message");
  expect_only_error_at(check(type), "/type");
}

TEST_F(CanonicalCheck, WrongTypeIsReportedAtTheValue) {
  auto count = example("victim.identification");
  set(count, "/body/accompanyingMinors", "one");
  EXPECT_EQ(
      expect_only_error_at(check(count), "/body/accompanyingMinors").rfind("has the wrong type", 0),
      0u);

  auto flag = example("victim.identification");
  set(flag, "/body/repatriationRequested", "yes");
  expect_only_error_at(check(flag), "/body/repatriationRequested");

  auto handling = example("receipt");
  set(handling, "/handling", "restricted");
  expect_only_error_at(check(handling), "/handling");

  auto body = example("receipt");
  set_json(body, "/body", "[]");
  expect_only_error_at(check(body), "/body");
}

TEST_F(CanonicalCheck, TooLongStringIsReportedWithTheLimit) {
  auto at_limit = example("receipt");
  set(at_limit, "/ref", std::string(128, 'R'));
  EXPECT_EQ(check(at_limit).status, 0);

  auto too_long = example("receipt");
  set(too_long, "/ref", std::string(129, 'R'));
  EXPECT_EQ(expect_only_error_at(check(too_long), "/ref"), "is longer than 128 characters");
}

TEST_F(CanonicalCheck, ValueOutOfRangeOrOfTheWrongFormIsReported) {
  auto minors = example("victim.identification");
  set_json(minors, "/body/accompanyingMinors", "101");
  expect_only_error_at(check(minors), "/body/accompanyingMinors");

  auto id = example("receipt");
  set(id, "/id", "not-a-uuid");
  expect_only_error_at(check(id), "/id");

  auto sex = example("victim.identification");
  set(sex, "/body/person/sex", "female");
  expect_only_error_at(check(sex), "/body/person/sex");
}

// --- Domain rules (422) --------------------------------------------------------------------------

TEST_F(CanonicalCheck, ImpossiblePartialDatesAreReportedAtTheirPointers) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/body/person/birthDate", "2023-02-29"},
      {"/body/person/birthDate", "2001-13"},
      {"/body/person/birthDate", "2001-00-10"},
      {"/body/person/birthDate", "2001-04-31"},
      {"/body/person/documents/0/issued", "2023-02-29"},
      {"/body/person/documents/0/expires", "2026-06-31"},
      {"/body/events/1/date", "2026-09-00"},
      {"/body/consent/date", "2100-02-29"},
      {"/handling/reviewDate", "2027-02-29"},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(pointer + " = " + value);
    auto doc = example("victim.identification");
    set(doc, pointer, value);
    expect_only_error_at(check(doc), pointer);
  }
}

// A Buddhist-Era date read the wrong way is 543 years off and still a real date: 2008 becomes
// 1465 (a child treated as an adult) or 2551. Wherever a person can be, such a date of birth is
// refused, and the reason names the bound, never the date.
TEST_F(CanonicalCheck, ImplausibleDatesOfBirthAreRefusedWhereverAPersonIs) {
  const std::vector<std::pair<std::string, std::string>> persons = {
      {"victim.identification", "/body/person"},  {"person.wanted", "/body/person"},
      {"hotline.tip", "/body/subjects/0/person"}, {"verification.request", "/body/subject"},
      {"verification.result", "/body/matched"},
  };
  const std::vector<std::pair<std::string, std::string>> dates = {
      {"1465-08-15", "is not a plausible date of birth (before 1900)"},
      {"1899-12", "is not a plausible date of birth (before 1900)"},
      {"1899", "is not a plausible date of birth (before 1900)"},
      {"1000", "is not a plausible date of birth (before 1900)"},
      {"2551-08-15", "is not a plausible date of birth (after the message was created)"},
      {"2027", "is not a plausible date of birth (after the message was created)"},
  };
  for (const auto& [type, person] : persons) {
    for (const auto& [date, reason] : dates) {
      SCOPED_TRACE(type + " " + person + " = " + date);
      auto doc = example(type);
      set(doc, person + "/birthDate", date);
      const auto result = check(doc);
      EXPECT_EQ(expect_only_error_at(result, person + "/birthDate"), reason);
      EXPECT_EQ(result.detail.find(date), std::string::npos) << result.detail;
    }
  }
}

TEST_F(CanonicalCheck, DatesOfBirthFrom1900ToTheDayOfCreatedAnywhereAreFine) {
  // 12:00 UTC is already the next day east of UTC+12:00: a baby born then is not refused.
  for (const std::string date :
       {"1900", "1900-01", "1900-01-01", "2026", "2026-11", "2026-11-21", "2026-11-22"}) {
    SCOPED_TRACE(date);
    auto doc = example("victim.identification");
    set(doc, "/created", "2026-11-21T12:00:00Z");
    set(doc, "/body/person/birthDate", date);
    const auto result = check(doc);
    EXPECT_EQ(result.status, 0) << describe(result);
  }
  for (const std::string date : {"2026-11-23", "2026-12", "2027"}) {
    SCOPED_TRACE(date);
    auto doc = example("victim.identification");
    set(doc, "/created", "2026-11-21T12:00:00Z");
    set(doc, "/body/person/birthDate", date);
    expect_only_error_at(check(doc), "/body/person/birthDate");
  }
}

TEST_F(CanonicalCheck, CreatedMustBeUtc) {
  auto doc = example("victim.identification");
  set(doc, "/created", "2026-11-21T09:42:10+07:00");
  EXPECT_EQ(expect_only_error_at(check(doc), "/created"), "must be in UTC (ending in Z)");

  auto zero_offset = example("victim.identification");
  set(zero_offset, "/created", "2026-11-21T02:42:10+00:00");
  expect_only_error_at(check(zero_offset), "/created");
}

TEST_F(CanonicalCheck, CreatedMustBeARealTime) {
  for (const std::string created :
       {"2026-02-30T10:00:00Z", "2026-04-31T00:00:00Z", "2025-02-29T12:00:00Z"}) {
    SCOPED_TRACE(created);
    auto doc = example("receipt");
    set(doc, "/created", created);
    EXPECT_EQ(expect_only_error_at(check(doc), "/created"), "is not a real RFC 3339 timestamp");
  }
}

TEST_F(CanonicalCheck, OtherTimestampsMustBeRealToo) {
  auto tip = example("hotline.tip");
  set(tip, "/body/receivedAt", "2026-02-30T19:58:00+07:00");
  expect_only_error_at(check(tip), "/body/receivedAt");

  auto receipt = example("receipt");
  set(receipt, "/body/received", "2026-06-31T02:50:01Z");
  expect_only_error_at(check(receipt), "/body/received");
}

TEST_F(CanonicalCheck, UnknownCountryIsReportedAtTheExactPointerNamingTheTable) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"victim.identification", "/body/person/nationalities/0"},
      {"victim.identification", "/body/person/documents/0/issuingCountry"},
      {"victim.identification", "/body/person/placeOfBirth/country"},
      {"victim.identification", "/body/events/2/place/country"},
      {"hotline.tip", "/body/places/0/country"},
      {"person.wanted", "/body/warrants/0/issuingCountry"},
      {"person.wanted", "/body/warrants/0/charges/0/statute/jurisdiction"},
      {"person.wanted", "/body/lastSeen/country"},
      {"person.wanted", "/body/countriesLikelyToBeVisited/2"},
  };
  for (const auto& [type, pointer] : cases) {
    SCOPED_TRACE(type + " " + pointer);
    auto doc = example(type);
    set(doc, pointer, "XX");
    const auto reason = expect_only_error_at(check(doc), pointer);
    EXPECT_NE(reason.find("table 'country'"), std::string::npos) << reason;
  }
}

TEST_F(CanonicalCheck, ReleasableToCountriesAreCheckedAndPartnerIdsAreNot) {
  auto doc = example("victim.identification");
  set_json(doc, "/handling/releasableTo", R"(["kh-ratanakiri", "KH", "XX"])");
  const auto reason = expect_only_error_at(check(doc), "/handling/releasableTo/2");
  EXPECT_NE(reason.find("table 'country'"), std::string::npos) << reason;
}

TEST_F(CanonicalCheck, UnknownRegionIsReportedAtItsCode) {
  auto doc = example("victim.identification");
  set(doc, "/body/person/homeRegion/code", "VN-99");
  const auto reason = expect_only_error_at(check(doc), "/body/person/homeRegion/code");
  EXPECT_NE(reason.find("table 'region'"), std::string::npos) << reason;

  auto place = example("hotline.tip");
  set(place, "/body/places/0/region/code", "KH-99");
  expect_only_error_at(check(place), "/body/places/0/region/code");
}

TEST_F(CanonicalCheck, UnknownLanguageIsReportedWhereverItAppears) {
  for (const std::string pointer : {"/body/person/languages/1", "/body/narrative/lang",
                                    "/body/narrative/translations/0/lang"}) {
    SCOPED_TRACE(pointer);
    auto doc = example("victim.identification");
    set(doc, pointer, "xxx");
    const auto reason = expect_only_error_at(check(doc), pointer);
    EXPECT_NE(reason.find("table 'language'"), std::string::npos) << reason;
  }
}

TEST_F(CanonicalCheck, UnknownScriptIsReported) {
  for (const std::string pointer :
       {"/body/person/names/0/script", "/body/linkedPersons/0/name/script"}) {
    SCOPED_TRACE(pointer);
    auto doc = example("victim.identification");
    set(doc, pointer, "Qaaa");
    const auto reason = expect_only_error_at(check(doc), pointer);
    EXPECT_NE(reason.find("table 'script'"), std::string::npos) << reason;
  }
}

TEST_F(CanonicalCheck, HotlineTipWithoutEvaluationIsRefused) {
  auto doc = example("hotline.tip");
  erase(doc, "/evaluation");
  expect_only_error_at(check(doc), "/evaluation");
  // Other types do not need one.
  auto receipt = example("receipt");
  ASSERT_FALSE(receipt.HasMember("evaluation"));
  EXPECT_EQ(check(receipt).status, 0);
}

TEST_F(CanonicalCheck, EveryDomainErrorInOneMessageIsListed) {
  auto doc = example("victim.identification");
  set(doc, "/created", "2026-11-21T09:42:10+07:00");
  set(doc, "/body/person/birthDate", "2023-02-29");
  set(doc, "/body/person/nationalities/0", "XX");
  set(doc, "/body/person/homeRegion/code", "VN-99");
  set(doc, "/body/person/languages/0", "xxx");
  set(doc, "/body/person/names/1/script", "Qaaa");
  set(doc, "/body/events/0/place/country", "QQ");
  const auto result = check(doc);
  EXPECT_EQ(result.status, 422);
  const auto got = pointers_of(result);
  EXPECT_EQ(
      std::set<std::string>(got.begin(), got.end()),
      (std::set<std::string>{"/created", "/body/person/birthDate", "/body/person/nationalities/0",
                             "/body/person/homeRegion/code", "/body/person/languages/0",
                             "/body/person/names/1/script", "/body/events/0/place/country"}))
      << describe(result);
  EXPECT_EQ(got.size(), 7u) << "each breach once";
}

TEST_F(CanonicalCheck, ConcurrentChecksGiveTheSameVerdicts) {
  // check() is const and documented thread-safe: the gateway calls it from every I/O thread.
  std::vector<std::string> bodies;
  std::vector<int> expected;
  for (const auto& type : body_types) {
    auto doc = example(type);
    bodies.push_back(json::to_string(doc));
    expected.push_back(0);
    set(doc, "/created", "2026-02-30T00:00:00Z");
    bodies.push_back(json::to_string(doc));
    expected.push_back(422);
  }
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < bodies.size(); ++i) {
          rapidjson::Document doc;
          if (checker_->check(bodies[i], sender, doc).status != expected[i]) {
            ++failures[t];
          }
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (int f : failures) {
    EXPECT_EQ(f, 0);
  }
}

// --- Domain rules on their own ----------------------------------------------------------------

TEST(DomainRules, IsUuid) {
  EXPECT_TRUE(is_uuid("3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17"));
  EXPECT_TRUE(is_uuid("3F2B8C1E-7D4A-4E2B-9C61-0A5D2E8F4B17"));
  EXPECT_FALSE(is_uuid(""));
  EXPECT_FALSE(is_uuid("3f2b8c1e7d4a4e2b9c610a5d2e8f4b17"));
  EXPECT_FALSE(is_uuid("3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b1"));
  EXPECT_FALSE(is_uuid("3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17a"));
  EXPECT_FALSE(is_uuid("3f2b8c1e-7d4a-4e2b-9c61_0a5d2e8f4b17"));
  EXPECT_FALSE(is_uuid("3g2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17"));
}

TEST(DomainRules, TablesThatAreNotLoadedAreNotCheckedButDatesAre) {
  code_tables none;
  auto doc = json::parse_file(
      (source_dir() / "config" / "examples" / "victim.identification.json").string());
  rapidjson::Pointer("/body/person/nationalities/0").Set(doc, "XX");
  std::vector<field_error> errors;
  check_domain_rules(doc, none, errors);
  EXPECT_TRUE(errors.empty());
  rapidjson::Pointer("/body/person/birthDate").Set(doc, "2023-02-29");
  check_domain_rules(doc, none, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "/body/person/birthDate");
}

TEST(DomainRules, WithoutAReadableCreatedOnlyThe1900BoundIsChecked) {
  code_tables none;
  rapidjson::Document doc;
  doc.Parse(R"({"id": "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17", "created": "not a time",
               "body": {"person": {"birthDate": "2551"}}})");
  std::vector<field_error> errors;
  check_domain_rules(doc, none, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "/created");
  errors.clear();
  rapidjson::Pointer("/body/person/birthDate").Set(doc, "1465-08-15");
  check_domain_rules(doc, none, errors);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[1].pointer, "/body/person/birthDate");
  EXPECT_EQ(errors[1].reason, "is not a plausible date of birth (before 1900)");
}

TEST(DomainRules, NonUuidIdAndMissingEvaluationAreReported) {
  code_tables none;
  rapidjson::Document doc;
  doc.Parse(R"({"id": "123", "type": "hotline.tip", "body": {}})");
  std::vector<field_error> errors;
  check_domain_rules(doc, none, errors);
  std::set<std::string> got;
  for (const auto& e : errors) {
    got.insert(e.pointer);
  }
  EXPECT_EQ(got, (std::set<std::string>{"/id", "/evaluation"}));
}

}  // namespace
}  // namespace mxgw::pipeline
