// The interpol adapter: the partner description's red and yellow examples (golden), partial dates,
// units, language codes, aliases, unknown fields kept, stable content ids, refusals, read-only.
#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/interpol/interpol.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::adapters {
namespace {

using test::source_dir;

std::filesystem::path golden_dir() {
  return source_dir() / "tests" / "adapters" / "golden" / "interpol";
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text.substr(0, 200);
  return doc;
}

std::string describe(const std::vector<field_error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += "[" + e.pointer + "] " + e.reason + "\n";
  }
  return out;
}

bool has_error(const std::vector<field_error>& errors, std::string_view pointer,
               std::string_view words = "") {
  return std::any_of(errors.begin(), errors.end(), [&](const field_error& e) {
    return e.pointer == pointer && e.reason.find(words) != std::string::npos;
  });
}

class Interpol : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<pipeline::config_problem> problems;
    checker_ = std::make_unique<pipeline::canonical_checker>(pipeline::canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    problems_ = problems.size();
  }
  static void TearDownTestSuite() { checker_.reset(); }

  void SetUp() override {
    ASSERT_EQ(problems_, 0u);
    ASSERT_NE(feed(), nullptr) << "interpol is not registered";
  }

  static const adapter* feed() { return find_adapter("interpol"); }

  static adapter_context ctx(bool carry = false) {
    // A fixed clock: `created` is the only value that is not taken from the notice.
    return {.tables = &checker_->tables(),
            .sender = "interpol-feed",
            .carry_unmapped = carry,
            .now = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000))};
  }

  static decode_result decode(const std::string& bytes, bool carry = false) {
    return feed()->decode(bytes, ctx(carry));
  }

  static decode_result decode_file(const std::string& name) {
    return decode(test::read_file(golden_dir() / name));
  }

  /// The example `name` with `pointer` set to `v` (removed when `v` is null).
  static std::string with(const std::string& name, const char* pointer, const std::string& v) {
    auto doc = parse(test::read_file(golden_dir() / name));
    if (v == "null-remove") {
      rapidjson::Pointer(pointer).Erase(doc);
    } else {
      rapidjson::Document value(&doc.GetAllocator());
      value.Parse(v.c_str());
      rapidjson::Pointer(pointer).Set(doc, value);
    }
    return json::to_string(doc);
  }

  static pipeline::check_result check(const rapidjson::Value& message) {
    rapidjson::Document parsed;
    return checker_->check(json::to_string(message), "interpol-feed", parsed);
  }

  static inline std::unique_ptr<pipeline::canonical_checker> checker_;
  static inline std::size_t problems_ = 0;
};

TEST_F(Interpol, RedNoticeExampleDecodesToTheGoldenPersonWanted) {
  auto r = decode_file("red-notice.json");
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  const auto expected = parse(test::read_file(golden_dir() / "red-notice.expected.json"));
  EXPECT_EQ(json::to_string(r.message), json::to_string(expected));
  const auto verdict = check(r.message);
  EXPECT_EQ(verdict.status, 0) << verdict.detail << describe(verdict.errors);
}

TEST_F(Interpol, YellowNoticeExampleDecodesToTheGoldenPossibleVictim) {
  auto r = decode_file("yellow-notice.json");
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  const auto expected = parse(test::read_file(golden_dir() / "yellow-notice.expected.json"));
  EXPECT_EQ(json::to_string(r.message), json::to_string(expected));
  const auto verdict = check(r.message);
  EXPECT_EQ(verdict.status, 0) << verdict.detail << describe(verdict.errors);
}

TEST_F(Interpol, AliasesPartialDatesUnitsLanguagesAndUnknownFields) {
  auto r = decode_file("red-alias-partial.json");
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  const auto expected = parse(test::read_file(golden_dir() / "red-alias-partial.expected.json"));
  EXPECT_EQ(json::to_string(r.message), json::to_string(expected));
  EXPECT_EQ(check(r.message).status, 0) << describe(check(r.message).errors);
  const auto& person = r.message["body"]["person"];
  // "SOPHEAK (SOPHEA)" with no forename: a primary and an alias family name.
  ASSERT_EQ(person["names"].Size(), 2u);
  EXPECT_STREQ(person["names"][0]["family"][0].GetString(), "SOPHEAK");
  EXPECT_FALSE(person["names"][0].HasMember("given"));
  EXPECT_STREQ(person["names"][1]["family"][0].GetString(), "SOPHEA");
  EXPECT_STREQ(person["names"][1]["kind"].GetString(), "alias");
  EXPECT_STREQ(person["birthDate"].GetString(), "1979");
  EXPECT_EQ(person["physical"]["heightCm"].GetInt(), 170);
  EXPECT_EQ(person["physical"]["weightKg"].GetInt(), 64);
  // ISO 639-2/B (FRE, not FRA) -> ISO 639-3.
  EXPECT_EQ(json::to_string(person["languages"]), R"(["khm","tha","fra"])");
  // Fields without a mapping are kept verbatim under their pointer, never refused.
  EXPECT_TRUE(r.message["unmapped"]["/weapons_known"].IsTrue());
  EXPECT_STREQ(r.message["unmapped"]["/arrest_warrants/0/warrant_ref"].GetString(), "TH-2025-0009");
  EXPECT_STREQ(r.message["body"]["warrants"][0]["charges"][0]["translation"]["text"].GetString(),
               "Traite des personnes");
}

TEST_F(Interpol, ALinkedNoticesAliasIsKeptAsGiven) {
  // A linked person holds one name: the alias cannot be a second one, so the name travels as
  // the notice gave it, beside the primary name.
  auto r = decode(with("yellow-notice.json", "/_embedded/links/0/name", R"j("LY (LI)")j"));
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  const auto& linked = r.message["body"]["linkedPersons"][0];
  EXPECT_EQ(json::to_string(linked["name"]["family"]), R"(["LY"])");
  EXPECT_STREQ(r.message["unmapped"]["/_embedded/links/0/name"].GetString(), "LY (LI)");
  EXPECT_FALSE(r.message["unmapped"].HasMember("/_embedded/links/0/forename"));
  EXPECT_EQ(check(r.message).status, 0) << describe(check(r.message).errors);
  r = decode(with("yellow-notice.json", "/_embedded/links/0/forename", R"j("VAN TAI (TAY)")j"));
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  EXPECT_STREQ(r.message["unmapped"]["/_embedded/links/0/forename"].GetString(), "VAN TAI (TAY)");
  // Without an alias nothing is kept twice.
  r = decode_file("yellow-notice.json");
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  EXPECT_FALSE(r.message.HasMember("unmapped") &&
               r.message["unmapped"].HasMember("/_embedded/links/0/name"));
}

TEST_F(Interpol, ChargeTextIsKeptAsGivenWithLineBreaksAndNoLanguage) {
  auto r = decode_file("red-notice.json");
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  const auto& charge = r.message["body"]["warrants"][0]["charges"][0];
  EXPECT_EQ(std::string(charge["text"].GetString()),
            "Mua bán người (Điều 150 Bộ luật Hình sự)\r\nTổ chức xuất cảnh trái phép");
  EXPECT_FALSE(charge.HasMember("lang"));
  EXPECT_FALSE(charge.HasMember("translation"));
}

TEST_F(Interpol, PartialDateShapesAndNullAreRead) {
  for (const auto& [given, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"("1985/03/02")", "1985-03-02"}, {R"("1985/03")", "1985-03"}, {R"("1985")", "1985"}}) {
    auto r = decode(with("red-notice.json", "/date_of_birth", given));
    ASSERT_EQ(r.status, 0) << given << describe(r.errors);
    EXPECT_EQ(std::string(r.message["body"]["person"]["birthDate"].GetString()), expected);
  }
  auto none = decode(with("red-notice.json", "/date_of_birth", "null"));
  ASSERT_EQ(none.status, 0) << describe(none.errors);
  EXPECT_FALSE(none.message["body"]["person"].HasMember("birthDate"));
}

TEST_F(Interpol, ForenameNullOrDashMeansNoGivenName) {
  for (const char* forename : {"null", R"("-")", R"("")"}) {
    auto r = decode(with("red-notice.json", "/forename", forename));
    ASSERT_EQ(r.status, 0) << forename << describe(r.errors);
    const auto& name = r.message["body"]["person"]["names"][0];
    EXPECT_FALSE(name.HasMember("given")) << forename;
    EXPECT_STREQ(name["family"][0].GetString(), "TRAN");
  }
}

TEST_F(Interpol, ZeroHeightAndWeightAreUnknown) {
  auto r = decode(with("red-notice.json", "/height", "0"));  // weight is 0 in the example
  ASSERT_EQ(r.status, 0) << describe(r.errors);
  const auto& physical = r.message["body"]["person"]["physical"];
  EXPECT_FALSE(physical.HasMember("heightCm"));
  EXPECT_FALSE(physical.HasMember("weightKg"));
}

TEST_F(Interpol, TheSameContentIsTheSameMessageAndAChangeIsANewOne) {
  const auto first = decode_file("red-notice.json");
  ASSERT_EQ(first.status, 0);
  const std::string id = first.message["id"].GetString();
  EXPECT_EQ(id, message_uuid("interpol-feed",
                             "2026/10001#" + interpol::content_fingerprint(parse(test::read_file(
                                                 golden_dir() / "red-notice.json")))));
  // Member order and the relay's links do not change the content.
  auto doc = parse(test::read_file(golden_dir() / "red-notice.json"));
  rapidjson::Document reordered(rapidjson::kObjectType);
  for (auto it = doc.MemberEnd(); it != doc.MemberBegin();) {
    --it;
    reordered.AddMember(rapidjson::Value(it->name, reordered.GetAllocator()),
                        rapidjson::Value(it->value, reordered.GetAllocator()),
                        reordered.GetAllocator());
  }
  rapidjson::Pointer("/_links/self/href")
      .Set(reordered, "https://relay.example/notices/v1/red/2026-10001");
  auto again = decode(json::to_string(reordered));
  ASSERT_EQ(again.status, 0) << describe(again.errors);
  EXPECT_EQ(std::string(again.message["id"].GetString()), id);
  // A new warrant under the same entity_id is another message.
  auto changed = decode(with("red-notice.json", "/arrest_warrants/1",
                             R"({"charge":"Organising illegal emigration","issuing_country_id":"KH",
                                 "charge_translation":null})"));
  ASSERT_EQ(changed.status, 0) << describe(changed.errors);
  EXPECT_NE(std::string(changed.message["id"].GetString()), id);
  EXPECT_EQ(changed.message["body"]["warrants"].Size(), 2u);
  // Another feed partner publishing the same notice sends another message.
  auto other = feed()->decode(test::read_file(golden_dir() / "red-notice.json"),
                              {.tables = &checker_->tables(), .sender = "other-feed"});
  EXPECT_NE(std::string(other.message["id"].GetString()), id);
}

TEST_F(Interpol, WithTheGatewaysIdKeyANoticesIdIsKeyed) {
  // Recipients see a notice's content and so could compute its public id (and its withdrawal's):
  // with the key they cannot.
  mac_key key{};
  key[0] = 0x5a;
  auto keyed = ctx();
  keyed.message_id_key = &key;
  const auto text = test::read_file(golden_dir() / "red-notice.json");
  const auto d = feed()->decode(text, keyed);
  ASSERT_EQ(d.status, 0);
  const std::string reference = "2026/10001#" + interpol::content_fingerprint(parse(text));
  EXPECT_EQ(std::string(d.message["id"].GetString()),
            derived_message_id(&key, "interpol-feed", reference));
  EXPECT_NE(std::string(d.message["id"].GetString()), message_uuid("interpol-feed", reference));
}

TEST_F(Interpol, UnknownCodesAreRefusedUnlessThePartnerCarriesThem) {
  const auto bytes = with("red-notice.json", "/languages_spoken_ids", R"(["VIE","ZZZ","FRA"])");
  auto refused = decode(bytes);
  EXPECT_EQ(refused.status, 422);
  EXPECT_TRUE(has_error(refused.errors, "/languages_spoken_ids/1", "unknown code 'ZZZ'"))
      << describe(refused.errors);
  // FRA is the 639-2/T code: the feed sends B codes (FRE), so it is unknown too.
  EXPECT_TRUE(has_error(refused.errors, "/languages_spoken_ids/2", "table language"));
  EXPECT_TRUE(refused.message.IsNull());
  auto carried = decode(bytes, true);
  ASSERT_EQ(carried.status, 0) << describe(carried.errors);
  EXPECT_STREQ(carried.message["unmapped"]["/languages_spoken_ids/1"].GetString(), "ZZZ");
  EXPECT_EQ(json::to_string(carried.message["body"]["person"]["languages"]), R"(["vie"])");
  auto nationality = decode(with("red-notice.json", "/nationalities", R"(["VN","QQ"])"));
  EXPECT_TRUE(has_error(nationality.errors, "/nationalities/1", "table country"));
  auto sex = decode(with("red-notice.json", "/sex_id", R"("Q")"));
  EXPECT_TRUE(has_error(sex.errors, "/sex_id", "table sex"));
}

TEST_F(Interpol, BadValuesAreRefusedAtTheirPointerWithoutEchoingContent) {
  struct bad {
    const char* pointer;
    const char* value;
    const char* words;
  };
  for (const auto& b : std::vector<bad>{
           {"/date_of_birth", R"("1985/02/30")", "is not a real date"},
           {"/date_of_birth", R"("02/03/1985")", "YYYY/MM/DD"},
           {"/date_of_birth", R"("1985-03-02")", "is not a real date"},
           {"/height", "168", "metres"},
           {"/height", R"("1.68")", "must be a number"},
           {"/weight", "-3", "kilograms"},
           {"/name", "42", "must be a string"},
           {"/arrest_warrants/0/issuing_country_id", "null", "is required"},
           {"/arrest_warrants/0/charge", R"("")", "is required"},
           {"/arrest_warrants/0/issuing_country_id", R"("XX")", "country table"},
       }) {
    auto r = decode(with("red-notice.json", b.pointer, b.value));
    EXPECT_EQ(r.status, 422) << b.pointer << " " << b.value;
    EXPECT_TRUE(has_error(r.errors, b.pointer, b.words)) << b.pointer << "\n" << describe(r.errors);
    for (const auto& e : r.errors) {
      EXPECT_EQ(e.reason.find("TRAN"), std::string::npos);  // no personal data echoed
    }
  }
}

TEST_F(Interpol, ANoticeNamingNoOneIsRefused) {
  auto doc = parse(with("red-notice.json", "/name", R"("")"));
  rapidjson::Pointer("/forename").Set(doc, "-");
  auto r = decode(json::to_string(doc));
  EXPECT_EQ(r.status, 422);
  EXPECT_TRUE(has_error(r.errors, "/name", "names no one")) << describe(r.errors);
}

TEST_F(Interpol, UnNoticesAreNotRoutedAndOtherDocumentsAreNotNotices) {
  auto un = decode(with("red-notice.json", "/_links/self/href",
                        R"("https://feed.example/notices/v1/un/persons/2026-10001")"));
  EXPECT_EQ(un.status, 422);
  EXPECT_TRUE(has_error(un.errors, "/_links/self/href", "UN notices are not routed"))
      << describe(un.errors);

  EXPECT_EQ(decode("[1,2]").status, 400);
  EXPECT_EQ(decode("{\"entity_id\":").status, 400);
  EXPECT_EQ(decode("\xff\xfe").status, 400);
  EXPECT_EQ(decode(R"({"entity_id":"2026/1","name":"X"})").status, 400);  // no notice type
  auto no_id = decode(with("red-notice.json", "/entity_id", "null"));
  EXPECT_EQ(no_id.status, 400);
  EXPECT_TRUE(has_error(no_id.errors, "/entity_id", "is required"));
  auto bad_id = decode(with("red-notice.json", "/entity_id", R"("2026-10001")"));
  EXPECT_EQ(bad_id.status, 422);
  EXPECT_TRUE(has_error(bad_id.errors, "/entity_id", "YYYY/NNNNN"));
  std::string deep(200, '[');
  EXPECT_EQ(decode(deep).status, 400);
  // Without a self link the members tell the type.
  auto bare = decode(with("red-notice.json", "/_links", "null-remove"));
  ASSERT_EQ(bare.status, 0) << describe(bare.errors);
  EXPECT_STREQ(bare.message["type"].GetString(), "person.wanted");
}

TEST_F(Interpol, TheFeedIsReadOnlyEncodeCannotExpressAnything) {
  const auto message =
      parse(test::read_file(source_dir() / "config" / "examples" / "person.wanted.json"));
  auto r = feed()->encode(message, ctx());
  EXPECT_EQ(r.status, 422);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].reason.find("format-cannot-express"), std::string::npos);
  EXPECT_TRUE(r.bytes.empty());
}

TEST(InterpolHelpers, EntityIdsNoticeTypesAndFingerprints) {
  EXPECT_TRUE(interpol::is_entity_id("2026/10001"));
  EXPECT_FALSE(interpol::is_entity_id("2026-10001"));
  EXPECT_FALSE(interpol::is_entity_id("26/10001"));
  EXPECT_FALSE(interpol::is_entity_id("2026/"));
  EXPECT_FALSE(interpol::is_entity_id("2026/1234567890123"));
  EXPECT_EQ(interpol::notice_type_of("YELLOW"), interpol::notice_type::yellow);
  EXPECT_FALSE(interpol::notice_type_of("blue"));
  rapidjson::Document a, b;
  a.Parse(R"({"x":1,"y":[1,{"b":2,"a":1}],"_links":{"self":"p"}})");
  b.Parse(R"({"y":[1,{"a":1,"b":2}],"x":1,"_links":{"self":"q"}})");
  EXPECT_EQ(interpol::content_fingerprint(a), interpol::content_fingerprint(b));
  b.Parse(R"({"y":[{"a":1,"b":2},1],"x":1})");
  EXPECT_NE(interpol::content_fingerprint(a), interpol::content_fingerprint(b));
}

}  // namespace
}  // namespace mxgw::adapters
