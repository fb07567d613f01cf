// The kh-cnp adapter: golden examples, refusals with located errors, ids, receipts and errors.
#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <algorithm>
#include <cctype>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::adapters {
namespace {

using test::source_dir;

const std::filesystem::path golden_dir() {
  return source_dir() / "tests" / "adapters" / "golden" / "kh-cnp";
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text.substr(0, 200);
  return doc;
}

rapidjson::Document golden(const std::string& name) {
  return parse(test::read_file(golden_dir() / name));
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

class KhCnp : public ::testing::Test {
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
    ASSERT_NE(kh(), nullptr) << "kh-cnp is not registered";
  }

  static const adapter* kh() { return find_adapter("kh-cnp"); }

  static adapter_context ctx(std::string sender = "kh-ratanakiri", bool carry = false) {
    return {.tables = &checker_->tables(), .sender = std::move(sender), .carry_unmapped = carry};
  }

  /// The real canonical check, as the gateway runs it after decoding.
  static pipeline::check_result check(const rapidjson::Value& message, std::string_view sender) {
    rapidjson::Document parsed;
    return checker_->check(json::to_string(message), sender, parsed);
  }

  static decode_result decode(const rapidjson::Value& kh_doc, const adapter_context& c = ctx()) {
    return kh()->decode(json::to_string(kh_doc), c);
  }

  /// The victim-referral example with `pointer` set to `v` (or removed when `v` is null).
  static rapidjson::Document victim_with(const char* pointer, const rapidjson::Value& v) {
    auto doc = golden("victim-referral.kh.json");
    if (v.IsNull()) {
      rapidjson::Pointer(pointer).Erase(doc);
    } else {
      rapidjson::Pointer(pointer).Set(doc, v);
    }
    return doc;
  }
  static rapidjson::Document victim_with(const char* pointer, const char* text) {
    return victim_with(pointer, rapidjson::Value(rapidjson::StringRef(text)));
  }

  static inline std::unique_ptr<pipeline::canonical_checker> checker_;
  static inline std::size_t problems_ = 0;
};

// --- registration and tables ---------------------------------------------------------------------

TEST_F(KhCnp, IsRegisteredAsJson) {
  const auto ids = adapter_ids();
  EXPECT_NE(std::find(ids.begin(), ids.end(), "kh-cnp"), ids.end());
  EXPECT_EQ(kh()->id(), "kh-cnp");
  EXPECT_EQ(kh()->content_type(), "application/json");
}

TEST_F(KhCnp, CodeTablesKeepEachEntrysPartnerColumns) {
  const auto& tables = checker_->tables();
  const rapidjson::Value* kh_entry = tables.entry("country", "KH");
  ASSERT_NE(kh_entry, nullptr);
  EXPECT_EQ(json::get_string(*kh_entry, "alpha3"), "KHM");
  EXPECT_EQ(tables.entry("country", "ZZ"), nullptr);
  EXPECT_EQ(tables.entry("no-such-table", "KH"), nullptr);
  ASSERT_NE(tables.find("region"), nullptr);
  EXPECT_EQ(tables.find("region")->entries().size(), tables.find("region")->codes.size());
  const rapidjson::Value* ratanakiri = tables.entry("region", "KH-16");
  ASSERT_NE(ratanakiri, nullptr);
  EXPECT_EQ((*ratanakiri)["partnerCode"].GetInt(), 16);
  pipeline::code_table built_in_code;
  EXPECT_EQ(built_in_code.entry("KH"), nullptr);
  EXPECT_TRUE(built_in_code.entries().empty());
}

// --- golden: the partner's own examples ----------------------------------------------------------

TEST_F(KhCnp, VictimReferralExampleDecodesToTheExpectedCanonicalMessage) {
  const auto result =
      kh()->decode(test::read_file(golden_dir() / "victim-referral.kh.json"), ctx("kh-ratanakiri"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_EQ(result.message, golden("victim-referral.expected.json"))
      << json::to_string(result.message);
  const auto verdict = check(result.message, "kh-ratanakiri");
  EXPECT_EQ(verdict.status, 0) << verdict.detail << "\n" << describe(verdict.errors);
}

TEST_F(KhCnp, WantedPersonExampleDecodesToTheExpectedCanonicalMessage) {
  const auto result =
      kh()->decode(test::read_file(golden_dir() / "wanted-person.kh.json"), ctx("kh-stungtreng"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_EQ(result.message, golden("wanted-person.expected.json"))
      << json::to_string(result.message);
  const auto verdict = check(result.message, "kh-stungtreng");
  EXPECT_EQ(verdict.status, 0) << verdict.detail << "\n" << describe(verdict.errors);
}

TEST_F(KhCnp, ExamplesSurviveDecodeEncodeDecode) {
  for (const auto& [file, sender] : {std::pair{"victim-referral.kh.json", "kh-ratanakiri"},
                                     std::pair{"wanted-person.kh.json", "kh-stungtreng"}}) {
    SCOPED_TRACE(file);
    const auto first = kh()->decode(test::read_file(golden_dir() / file), ctx(sender));
    ASSERT_EQ(first.status, 0) << describe(first.errors);
    adapter_context out = ctx(sender);
    out.recipient = "vn-gialai";
    const auto bytes = kh()->encode(first.message, out);
    ASSERT_EQ(bytes.status, 0) << describe(bytes.errors);
    const auto second = kh()->decode(bytes.bytes, ctx(sender));
    ASSERT_EQ(second.status, 0) << describe(second.errors) << bytes.bytes;
    // The msg_no sent names the message (<ref>/<id>): that is the one change, and only once.
    rapidjson::Document renamed;
    renamed.CopyFrom(first.message, renamed.GetAllocator());
    const std::string msg_no = std::string(json::get_string(first.message, "ref")) + "/" +
                               std::string(json::get_string(first.message, "id"));
    EXPECT_EQ(json::get_string(parse(bytes.bytes), "msg_no"), msg_no);
    renamed["ref"].SetString(msg_no.c_str(), renamed.GetAllocator());
    renamed["id"].SetString(message_uuid(sender, msg_no).c_str(), renamed.GetAllocator());
    EXPECT_EQ(second.message, renamed) << json::to_string(second.message);
    const auto again = kh()->encode(second.message, out);
    ASSERT_EQ(again.status, 0) << describe(again.errors);
    EXPECT_EQ(again.bytes, bytes.bytes) << "a fixpoint after one round";
  }
}

TEST_F(KhCnp, RepositoryExamplesEncodeToTheExpectedKhMessages) {
  for (const std::string type : {"victim.identification", "person.wanted", "hotline.tip",
                                 "verification.request", "verification.result", "receipt"}) {
    SCOPED_TRACE(type);
    const auto canonical =
        parse(test::read_file(source_dir() / "config" / "examples" / (type + ".json")));
    adapter_context c = ctx("vn-gialai");
    c.recipient = type == "person.wanted" ? "kh-stungtreng" : "kh-ratanakiri";
    const auto encoded = kh()->encode(canonical, c);
    ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
    EXPECT_EQ(parse(encoded.bytes), golden("encode-" + type + ".kh.json")) << encoded.bytes;
    // What comes back is a valid canonical message from the same sender.
    const auto back = kh()->decode(encoded.bytes, ctx("vn-gialai"));
    ASSERT_EQ(back.status, 0) << describe(back.errors);
    const auto verdict = check(back.message, "vn-gialai");
    EXPECT_EQ(verdict.status, 0) << verdict.detail << "\n" << describe(verdict.errors);
  }
}

TEST_F(KhCnp, VictimExampleBackFromKhKeepsWhatKhCanCarry) {
  const auto canonical =
      parse(test::read_file(source_dir() / "config" / "examples" / "victim.identification.json"));
  adapter_context c = ctx("vn-gialai");
  c.recipient = "kh-ratanakiri";
  const auto encoded = kh()->encode(canonical, c);
  ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
  const auto back = kh()->decode(encoded.bytes, ctx("vn-gialai"));
  ASSERT_EQ(back.status, 0) << describe(back.errors);
  EXPECT_EQ(back.message, golden("roundtrip-victim.identification.json"))
      << json::to_string(back.message);
}

TEST_F(KhCnp, CaseStatusHasNoKhMessageKind) {
  const auto canonical =
      parse(test::read_file(source_dir() / "config" / "examples" / "case.status.json"));
  adapter_context c = ctx("vn-gialai");
  c.recipient = "kh-ratanakiri";
  const auto encoded = kh()->encode(canonical, c);
  EXPECT_EQ(encoded.status, 422);
  EXPECT_TRUE(has_error(encoded.errors, "/type", "case.status")) << describe(encoded.errors);
  EXPECT_TRUE(encoded.bytes.empty());
}

// --- ids -----------------------------------------------------------------------------------------

TEST_F(KhCnp, TheSameMsgNoFromTheSameSenderIsTheSameMessage) {
  const std::string bytes = test::read_file(golden_dir() / "victim-referral.kh.json");
  const auto a = kh()->decode(bytes, ctx("kh-ratanakiri"));
  const auto again = kh()->decode(bytes, ctx("kh-ratanakiri"));
  const auto other = kh()->decode(bytes, ctx("kh-stungtreng"));
  ASSERT_EQ(a.status, 0);
  ASSERT_EQ(other.status, 0);
  const auto id = json::get_string(a.message, "id");
  EXPECT_EQ(id, json::get_string(again.message, "id"));
  EXPECT_NE(id, json::get_string(other.message, "id"));
  EXPECT_EQ(id, message_uuid("kh-ratanakiri", "RTK-2026-000123"));
  EXPECT_EQ(json::get_string(other.message, "sender"), "kh-stungtreng")
      << "the sender is the authenticated partner, never from_unit";
}

TEST_F(KhCnp, WithTheGatewaysIdKeyTheIdCannotBeComputedFromTheMsgNoAlone) {
  // Another partner knows Ratanakiri's msg_no pattern and the public derivation: with the key
  // (config message_ids.key), the id is not the one it computes, and is the keyed one.
  mac_key key{};
  key[0] = 0x5a;
  auto keyed = ctx("kh-ratanakiri");
  keyed.message_id_key = &key;
  const std::string bytes = test::read_file(golden_dir() / "victim-referral.kh.json");
  const auto a = kh()->decode(bytes, keyed);
  ASSERT_EQ(a.status, 0) << describe(a.errors);
  const std::string id(json::get_string(a.message, "id"));
  EXPECT_NE(id, message_uuid("kh-ratanakiri", "RTK-2026-000123"));
  EXPECT_EQ(id, derived_message_id(&key, "kh-ratanakiri", "RTK-2026-000123"));
  // Still the same message when sent again, and another partner's with the same msg_no is not.
  EXPECT_EQ(json::get_string(kh()->decode(bytes, keyed).message, "id"), id);
  auto other = keyed;
  other.sender = "kh-stungtreng";
  EXPECT_NE(json::get_string(kh()->decode(bytes, other).message, "id"), id);
}

// --- refusals ------------------------------------------------------------------------------------

TEST_F(KhCnp, UnknownExploitationCodeNamesThePointerTheValueAndTheTable) {
  const auto result = decode(victim_with("/case/exploitation/1", "DEBT_SLAVERY"));
  EXPECT_EQ(result.status, 422);
  ASSERT_EQ(result.errors.size(), 1u) << describe(result.errors);
  EXPECT_EQ(result.errors[0].pointer, "/case/exploitation/1");
  EXPECT_NE(result.errors[0].reason.find("'DEBT_SLAVERY'"), std::string::npos);
  EXPECT_NE(result.errors[0].reason.find("table exploitation"), std::string::npos);
  EXPECT_TRUE(result.message.IsNull()) << "nothing half-translated is returned";
}

TEST_F(KhCnp, UnknownSexIsRefused) {
  const auto result = decode(victim_with("/subject/sex", "Q"));
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(has_error(result.errors, "/subject/sex", "'Q' (table sex)"))
      << describe(result.errors);
}

TEST_F(KhCnp, KhmerSexWordsAreUnderstood) {
  for (const auto& [word, code] :
       {std::pair{"ប្រុស", "M"}, std::pair{"ស្រី", "F"}, std::pair{"U", "U"}}) {
    const auto result = decode(victim_with("/subject/sex", word));
    ASSERT_EQ(result.status, 0) << describe(result.errors);
    EXPECT_EQ(json::get_string(result.message["body"]["person"], "sex"), code);
  }
}

TEST_F(KhCnp, ImpossibleDatesAreRefusedAtTheirLocation) {
  for (const char* pointer : {"/subject/dob", "/case/found_date"}) {
    const auto result = decode(victim_with(pointer, "31/02/2026"));
    EXPECT_EQ(result.status, 422);
    EXPECT_TRUE(has_error(result.errors, pointer, "not a real date")) << describe(result.errors);
  }
  const auto leap = decode(victim_with("/subject/dob", "29/02/2008"));
  ASSERT_EQ(leap.status, 0) << describe(leap.errors);
  EXPECT_EQ(json::get_string(leap.message["body"]["person"], "birthDate"), "2008-02-29");
  EXPECT_EQ(decode(victim_with("/subject/dob", "29/02/2007")).status, 422);
  const auto year_only = decode(victim_with("/subject/dob", "00/00/2007"));
  ASSERT_EQ(year_only.status, 0);
  EXPECT_EQ(json::get_string(year_only.message["body"]["person"], "birthDate"), "2007");
  EXPECT_TRUE(has_error(decode(victim_with("/subject/dob", "12/00/2007")).errors, "/subject/dob"));
}

TEST_F(KhCnp, AnotherFormatIsNotThisFormat) {
  const auto wrong = decode(victim_with("/format", "KH-CNP-XCHG/1"));
  EXPECT_EQ(wrong.status, 400);
  EXPECT_TRUE(has_error(wrong.errors, "/format", "'KH-CNP-XCHG/1'")) << describe(wrong.errors);
  const auto missing = decode(victim_with("/format", rapidjson::Value()));
  EXPECT_EQ(missing.status, 400);
  EXPECT_TRUE(has_error(missing.errors, "/format", "is required"));
  EXPECT_EQ(kh()->decode("[1, 2]", ctx()).status, 400);
  EXPECT_EQ(kh()->decode("\"KH-CNP-XCHG/2\"", ctx()).status, 400);
}

TEST_F(KhCnp, MissingEnvelopeFieldsAreNamed) {
  for (const char* pointer : {"/msg_no", "/msg_kind", "/sent_at", "/classification", "/from_unit",
                              "/to_unit", "/subject", "/case", "/case/status", "/to_unit/code"}) {
    SCOPED_TRACE(pointer);
    const auto result = decode(victim_with(pointer, rapidjson::Value()));
    EXPECT_EQ(result.status, 422);
    EXPECT_TRUE(has_error(result.errors, pointer, "is required")) << describe(result.errors);
  }
  const auto empty = decode(victim_with("/msg_no", ""));
  EXPECT_TRUE(has_error(empty.errors, "/msg_no", "is required")) << "an empty msg_no is none";
}

TEST_F(KhCnp, SentAtNeedsAnOffset) {
  const auto result = decode(victim_with("/sent_at", "21/11/2026 09:42:10"));
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(has_error(result.errors, "/sent_at", "offset")) << describe(result.errors);
  const auto other_offset = decode(victim_with("/sent_at", "21/11/2026 10:42:10 +08:00"));
  ASSERT_EQ(other_offset.status, 0);
  EXPECT_EQ(json::get_string(other_offset.message, "created"), "2026-11-21T02:42:10Z");
}

TEST_F(KhCnp, InvalidUtf8AndDeepNestingAreNotThisFormat) {
  std::string bytes = test::read_file(golden_dir() / "victim-referral.kh.json");
  const auto at = bytes.find("Banlung");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 1] = '\xC3';  // a lead byte followed by an ASCII letter: broken UTF-8
  const auto broken = kh()->decode(bytes, ctx());
  EXPECT_EQ(broken.status, 400);
  ASSERT_FALSE(broken.errors.empty());
  EXPECT_EQ(broken.errors[0].reason.find("Banlung"), std::string::npos) << "no content echoed";

  std::string deep = R"({"format": "KH-CNP-XCHG/2", "narrative_en": )";
  deep += std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(kh()->decode(deep, ctx()).status, 400);
  EXPECT_EQ(kh()->decode("{\"format\": \"KH-CNP-XCHG/2\",", ctx()).status, 400);
}

TEST_F(KhCnp, NamesMustBeInTheScriptTheirFieldSays) {
  const auto latin_in_khmer = decode(victim_with("/subject/family_name_kh", "SOK"));
  EXPECT_EQ(latin_in_khmer.status, 422);
  EXPECT_TRUE(has_error(latin_in_khmer.errors, "/subject/family_name_kh", "Khmer script"))
      << describe(latin_in_khmer.errors);
  const auto khmer_in_latin = decode(victim_with("/subject/given_name_lat", "វិចិត្រ"));
  EXPECT_TRUE(has_error(khmer_in_latin.errors, "/subject/given_name_lat", "Latin script"));
}

TEST_F(KhCnp, AliasesGetTheScriptTheyAreWrittenIn) {
  rapidjson::Document aliases(rapidjson::kArrayType);
  for (const char* a : {"ស្រីហួ", "Hoa", "ສົມພອນ", "Hoa ស្រី", "123"}) {
    aliases.PushBack(rapidjson::StringRef(a), aliases.GetAllocator());
  }
  const auto result = decode(victim_with("/subject/aliases", aliases));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  const auto& names = result.message["body"]["person"]["names"];
  ASSERT_EQ(names.Size(), 6u);
  const char* scripts[] = {"Latn", "Khmr", "Latn", "Laoo", "Zyyy", "Zyyy"};
  for (rapidjson::SizeType i = 0; i < names.Size(); ++i) {
    EXPECT_EQ(json::get_string(names[i], "script"), scripts[i]) << i;
  }
  EXPECT_EQ(check(result.message, "kh-ratanakiri").status, 0);
}

TEST_F(KhCnp, ANamesOrderIsThePersonsCustomNotTheFormats) {
  // order of the primary names for each nationality (alpha-3 as KH-CNP writes it)
  const std::vector<std::pair<const char*, const char*>> cases{{"KHM", "family-first"},
                                                               {"VNM", "family-first"},
                                                               {"LAO", "given-first"},
                                                               {"THA", "given-first"},
                                                               {"FRA", ""},
                                                               {nullptr, "family-first"}};
  for (const auto& [nationality, expected] : cases) {
    const auto result =
        decode(nationality != nullptr ? victim_with("/subject/nationality", nationality)
                                      : victim_with("/subject/nationality", rapidjson::Value()));
    ASSERT_EQ(result.status, 0) << describe(result.errors);
    const auto& names = result.message["body"]["person"]["names"];
    for (const auto& name : names.GetArray()) {
      if (json::get_string(name, "kind") == "primary") {
        EXPECT_EQ(json::get_string(name, "order"), expected)
            << (nationality != nullptr ? nationality : "(none)");
      }
    }
    EXPECT_EQ(check(result.message, "kh-ratanakiri").status, 0);
  }
}

TEST_F(KhCnp, ASubjectWithoutAnyNameIsRefused) {
  auto doc = golden("victim-referral.kh.json");
  rapidjson::Pointer("/subject/family_name_lat").Erase(doc);
  rapidjson::Pointer("/subject/given_name_lat").Erase(doc);
  rapidjson::Pointer("/subject/aliases").Erase(doc);
  const auto result = decode(doc);
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(has_error(result.errors, "/subject", "needs a name")) << describe(result.errors);
}

TEST_F(KhCnp, UnknownFieldsAndValuesAreRefusedUnlessThePartnerMayCarryThem) {
  auto doc = victim_with("/case/exploitation/1", "DEBT_SLAVERY");
  auto& a = doc.GetAllocator();
  rapidjson::Pointer("/subject/eye_colour").Set(doc, "brown");
  rapidjson::Pointer("/subject/languages/0").Set(doc, "xx");
  rapidjson::Value scan(rapidjson::kObjectType);
  scan.AddMember("kind", "DOCUMENT_SCAN", a);
  scan.AddMember("mime", "image/jpeg", a);
  scan.AddMember("b64", "AAAA", a);
  rapidjson::Value attachments(rapidjson::kArrayType);
  attachments.PushBack(scan, a);
  doc.AddMember("attachments", attachments, a);

  const auto refused = decode(doc);
  EXPECT_EQ(refused.status, 422);
  EXPECT_TRUE(has_error(refused.errors, "/case/exploitation/1", "'DEBT_SLAVERY'"));
  EXPECT_TRUE(has_error(refused.errors, "/subject/eye_colour", "not a field"));
  EXPECT_TRUE(has_error(refused.errors, "/subject/languages/0", "(table language)"));
  EXPECT_TRUE(has_error(refused.errors, "/attachments/0/kind", "document scan"))
      << describe(refused.errors);

  const auto carried = decode(doc, ctx("kh-ratanakiri", true));
  ASSERT_EQ(carried.status, 0) << describe(carried.errors);
  const auto& unmapped = carried.message["unmapped"];
  EXPECT_EQ(json::to_string(unmapped["/case/exploitation/1"]), "\"DEBT_SLAVERY\"");
  EXPECT_EQ(json::to_string(unmapped["/subject/eye_colour"]), "\"brown\"");
  EXPECT_EQ(json::to_string(unmapped["/subject/languages/0"]), "\"xx\"");
  EXPECT_EQ(unmapped["/attachments/0"], doc["attachments"][0]);
  const auto& body = carried.message["body"];
  EXPECT_EQ(json::to_string(body["exploitation"]), R"(["forced-criminality"])")
      << "the known code stays, the unknown one is left out";
  EXPECT_FALSE(body["person"].HasMember("languages"));
  const auto verdict = check(carried.message, "kh-ratanakiri");
  EXPECT_EQ(verdict.status, 0) << verdict.detail << describe(verdict.errors);
}

TEST_F(KhCnp, RequiredCodesCannotBeCarried) {
  const auto result = decode(victim_with("/case/status", "MISSING"), ctx("kh-ratanakiri", true));
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(has_error(result.errors, "/case/status", "'MISSING' (table victim-status)"));
  const auto kind = decode(victim_with("/msg_kind", "CASE_UPDATE"), ctx("kh-ratanakiri", true));
  EXPECT_TRUE(has_error(kind.errors, "/msg_kind", "'CASE_UPDATE'"));
}

TEST_F(KhCnp, FieldsOfAnotherKindAreNotSilentlyDropped) {
  auto doc = golden("wanted-person.kh.json");
  rapidjson::Pointer("/narrative_en").Set(doc, "Seen with two trucks.");
  rapidjson::Pointer("/case/status").Set(doc, "RESCUED");
  const auto result = decode(doc, ctx("kh-stungtreng"));
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(has_error(result.errors, "/narrative_en", "WANTED_PERSON"));
  EXPECT_TRUE(has_error(result.errors, "/case", "not used on a WANTED_PERSON"));
}

// --- the other message kinds ---------------------------------------------------------------------

rapidjson::Document example(const std::string& type) {
  return parse(test::read_file(source_dir() / "config" / "examples" / (type + ".json")));
}

rapidjson::Document kh_message(const std::string& kind, const std::string& extra) {
  return parse(R"({"format": "KH-CNP-XCHG/2", "msg_no": "KEP-2026-000009", "msg_kind": ")" + kind +
               R"(", "sent_at": "01/12/2026 07:00:00 +07:00", "from_unit": {"code": "KH-23-PC"},
               "to_unit": {"code": "VN-30-CA"}, "classification": "NORMAL")" +
               (extra.empty() ? "" : ", " + extra) + "}");
}

constexpr const char* subject_json =
    R"("subject": {"family_name_lat": "KEO", "given_name_lat": "DARA", "sex": "F",
       "age_est": 16, "home_province": 23, "languages": ["km", "vi"]})";

TEST_F(KhCnp, HotlineTipGetsAnEvaluationAndKeepsTheLocalReceivedTime) {
  const auto doc = kh_message("HOTLINE_TIP", std::string(subject_json) + R"(,
      "tip": {"line": "1288", "received_at": "30/11/2026 22:15 +07:00", "anonymous": true,
              "urgency": "HIGH", "place": {"province": 23, "detail": "Kep market"},
              "summary_kh": "ក្មេងស្រីម្នាក់ត្រូវបានគេនាំទៅព្រំដែន",
              "summary_en": "A girl was taken to the border"})");
  const auto result = decode(doc, ctx("kh-kep"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  const auto expected = parse(R"({
    "receivedAt": "2026-11-30T22:15:00+07:00", "channel": "hotline-1288",
    "reporterType": "anonymous", "urgency": "high",
    "subjects": [{"role": "possible-victim", "person": {
      "names": [{"family": ["KEO"], "given": ["DARA"], "script": "Latn", "kind": "primary",
                 "order": "family-first"}],
      "sex": "F", "ageEstimate": {"min": 16, "max": 16},
      "homeRegion": {"code": "KH-23", "asRecorded": "23"}, "languages": ["khm", "vie"]}}],
    "places": [{"country": "KH", "region": {"code": "KH-23", "asRecorded": "23"},
                "detail": "Kep market"}],
    "summary": {"text": "ក្មេងស្រីម្នាក់ត្រូវបានគេនាំទៅព្រំដែន", "lang": "khm",
                "translations": [{"text": "A girl was taken to the border", "lang": "eng"}]}})");
  EXPECT_EQ(result.message["body"], expected) << json::to_string(result.message["body"]);
  EXPECT_EQ(json::to_string(result.message["evaluation"]),
            R"({"sourceReliability":"X","informationAccuracy":4})");
  EXPECT_EQ(check(result.message, "kh-kep").status, 0);

  const auto without_summary = kh_message("HOTLINE_TIP", std::string(subject_json) + R"(,
      "tip": {"received_at": "30/11/2026 22:15 +07:00", "urgency": "HIGH", "summary_en": ""})");
  EXPECT_TRUE(has_error(decode(without_summary).errors, "/tip/summary_en", "is required"));
}

// `anonymous: false` says the caller gave a name, not who the caller is: no reporter type is
// made up ("public" would say a member of the public called, when it may be the victim).
TEST_F(KhCnp, ANamedCallerIsNotMadeAMemberOfThePublic) {
  const auto doc = kh_message("HOTLINE_TIP", std::string(subject_json) + R"(,
      "tip": {"line": "1288", "received_at": "30/11/2026 22:15 +07:00", "anonymous": false,
              "urgency": "HIGH", "summary_en": "A girl was taken to the border"})");
  const auto result = decode(doc, ctx("kh-kep"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_FALSE(result.message["body"].HasMember("reporterType"))
      << json::to_string(result.message["body"]);
  EXPECT_EQ(check(result.message, "kh-kep").status, 0);

  // Going out, every reporter type but "anonymous" is a named caller.
  auto tip = example("hotline.tip");
  adapter_context c = ctx("vn-gialai");
  c.recipient = "kh-stungtreng";
  for (const char* reporter : {"victim", "family", "public", "ngo", "anonymous"}) {
    SCOPED_TRACE(reporter);
    rapidjson::Pointer("/body/reporterType").Set(tip, reporter);
    const auto encoded = kh()->encode(tip, c);
    ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
    EXPECT_EQ(parse(encoded.bytes)["tip"]["anonymous"].GetBool(),
              std::string_view(reporter) == "anonymous");
  }
}

// A refusal to verify is not a negative verification: KH-CNP's NOT_CONFIRMED would tell the
// commissariat the check was done and failed. It is refused, naming the field, quoting no
// personal value; no-record (nothing found, so nothing confirmed) is NOT_CONFIRMED.
TEST_F(KhCnp, ARefusedVerificationIsNotSentAsNotConfirmed) {
  auto m = example("verification.result");
  adapter_context c = ctx("vn-gialai");
  c.recipient = "kh-stungtreng";
  rapidjson::Pointer("/body/result").Set(m, "refused");
  const auto refused = kh()->encode(m, c);
  EXPECT_EQ(refused.status, 422);
  EXPECT_TRUE(refused.bytes.empty());
  ASSERT_TRUE(has_error(refused.errors, "/body/result", "'refused'")) << describe(refused.errors);
  for (const auto& e : refused.errors) {
    for (const auto& n : m["body"]["matched"]["names"].GetArray()) {
      for (const char* part : {"family", "given"}) {
        if (n.HasMember(part)) {
          for (const auto& p : n[part].GetArray()) {
            EXPECT_EQ(e.reason.find(p.GetString()), std::string::npos) << e.reason;
          }
        }
      }
    }
  }

  rapidjson::Pointer("/body/result").Set(m, "no-record");
  const auto no_record = kh()->encode(m, c);
  ASSERT_EQ(no_record.status, 0) << describe(no_record.errors);
  EXPECT_EQ(json::get_string(parse(no_record.bytes)["answer"], "result"), "NOT_CONFIRMED");
}

// A KH wanted person asks for no arrest (locate-and-inform, choice 6); an LA-MPS wanted message
// is an arrest request. Sent on to Laos it is refused at the requested action, not upgraded.
TEST_F(KhCnp, AWantedPersonFromCambodiaIsNotTurnedIntoALaoArrestRequest) {
  const auto decoded = decode(golden("wanted-person.kh.json"), ctx("kh-stungtreng"));
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(json::get_string(decoded.message["body"], "requestedAction"), "locate-and-inform");
  const adapter* la = find_adapter("la-mps");
  ASSERT_NE(la, nullptr);
  adapter_context c = ctx("kh-stungtreng");
  c.recipient = "la-houaphanh";
  const auto encoded = la->encode(decoded.message, c);
  EXPECT_EQ(encoded.status, 422);
  EXPECT_TRUE(encoded.bytes.empty());
  EXPECT_TRUE(has_error(encoded.errors, "/body/requestedAction", "'locate-and-inform'"))
      << describe(encoded.errors);
  for (const auto& e : encoded.errors) {
    EXPECT_EQ(e.reason.find("VICHET"), std::string::npos) << e.reason;
    EXPECT_EQ(e.reason.find("SOK"), std::string::npos) << e.reason;
  }
}

// --- a warrant's issuing country -----------------------------------------------------------------
// KH-CNP has no field for it (choice 6): the court names it, "... (issuing country: VNM)"; without
// that only a Cambodian unit's own message is taken to carry a Cambodian warrant.

/// Words a refusal about a warrant must not repeat: the person, the numbers, the court.
constexpr std::string_view warrant_personal_data[] = {
    "SOK", "VICHET",          "សុខ",      "190233871", "STG/W/2026/118", "Stung Treng", "Trần",
    "Mẫu", "EXAMPLE-LB-0001", "Gia Lai", "1988",      "1990",           "STG-2026",    "VN30-2026"};

/// `result` is a refusal with no message and exactly one error, at `pointer`, saying `words`,
/// that repeats none of the personal data or free text of the message.
void expect_only_refusal(const decode_result& result, std::string_view pointer,
                         std::string_view words) {
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(result.message.IsNull()) << "nothing half-translated";
  ASSERT_EQ(result.errors.size(), 1u) << describe(result.errors);
  EXPECT_EQ(result.errors[0].pointer, pointer) << describe(result.errors);
  EXPECT_NE(result.errors[0].reason.find(words), std::string::npos) << result.errors[0].reason;
  for (const auto personal : warrant_personal_data) {
    EXPECT_EQ(result.errors[0].reason.find(personal), std::string::npos) << result.errors[0].reason;
  }
}

TEST_F(KhCnp, AForeignWarrantThatCameThroughTheGatewayIsNotMadeCambodian) {
  const auto original = example("person.wanted");
  const auto& sent_warrant = original["body"]["warrants"][0];
  ASSERT_EQ(json::get_string(sent_warrant, "issuingCountry"), "VN");
  adapter_context out = ctx("vn-gialai");
  out.recipient = "kh-stungtreng";
  const auto sent = kh()->encode(original, out);
  ASSERT_EQ(sent.status, 0) << describe(sent.errors);
  auto kh_doc = parse(sent.bytes);
  EXPECT_EQ(json::get_string(kh_doc["warrant"], "court"),
            "Cơ quan Cảnh sát điều tra Công an tỉnh Gia Lai (issuing country: VNM)")
      << "a Vietnamese warrant in a Cambodian format says it is Vietnamese";

  // Returned by the commissariat under the msg_no it received: Vietnamese, as it was sent.
  const auto back = decode(kh_doc, ctx("kh-stungtreng"));
  ASSERT_EQ(back.status, 0) << describe(back.errors);
  const auto& w = back.message["body"]["warrants"][0];
  EXPECT_EQ(json::get_string(w, "issuingCountry"), "VN");
  EXPECT_EQ(json::get_string(w, "issuingAuthority"),
            json::get_string(sent_warrant, "issuingAuthority"));
  EXPECT_EQ(json::get_string(w["charges"][0]["statute"], "jurisdiction"), "VN");
  EXPECT_EQ(json::get_string(w["charges"][0]["statute"], "code"), "BLHS-2015 art. 150");
  EXPECT_EQ(check(back.message, "kh-stungtreng").status, 0);

  // As the gateway wrote it before it named the country (the court alone), under the msg_no the
  // gateway wrote, or its id alone: refused at the warrant, never Cambodian, carried or not.
  const std::string authority(json::get_string(sent_warrant, "issuingAuthority"));
  rapidjson::Pointer("/warrant/court").Set(kh_doc, authority.c_str());
  for (const char* msg_no : {"VN30-2026-000462/9a7c2d54-1e3f-4b8a-8f20-6c4d1b9e0a33",
                             "9A7C2D54-1E3F-4B8A-8F20-6C4D1B9E0A33"}) {
    rapidjson::Pointer("/msg_no").Set(kh_doc, msg_no);
    for (const bool carry : {false, true}) {
      SCOPED_TRACE(std::string(msg_no) + (carry ? " (carry)" : ""));
      const auto refused = decode(kh_doc, ctx("kh-stungtreng", carry));
      expect_only_refusal(refused, "/warrant", "has no issuing country");
      EXPECT_TRUE(has_error(refused.errors, "/warrant", "msg_no is one the gateway wrote"));
      EXPECT_TRUE(has_error(refused.errors, "/warrant", "'(issuing country: KHM)'"))
          << "the error says how a warrant names its country";
    }
  }
}

TEST_F(KhCnp, AWarrantInAnAnswerIsNotTakenToBeCambodian) {
  // Stung Treng's wanted message, sent as an update of the Vietnamese notice the gateway sent it
  // (reply_to), or of one it knows by Gia Lai's own number: the warrant may be Vietnam's.
  for (const char* reply_to :
       {"VN30-2026-000462/9a7c2d54-1e3f-4b8a-8f20-6c4d1b9e0a33", "VN30-2026-000462"}) {
    SCOPED_TRACE(reply_to);
    auto doc = golden("wanted-person.kh.json");
    rapidjson::Pointer("/reply_to").Set(doc, reply_to);
    for (const bool carry : {false, true}) {
      const auto refused = decode(doc, ctx("kh-stungtreng", carry));
      expect_only_refusal(refused, "/warrant", "answers another (reply_to)");
    }
    // The court says whose warrant it is: the answer is taken, with that country.
    rapidjson::Pointer("/warrant/court")
        .Set(doc, "Gia Lai Provincial People's Court (issuing country: VNM)");
    auto vietnamese = decode(doc, ctx("kh-stungtreng"));
    ASSERT_EQ(vietnamese.status, 0) << describe(vietnamese.errors);
    const auto& w = vietnamese.message["body"]["warrants"][0];
    EXPECT_EQ(json::get_string(w, "issuingCountry"), "VN");
    EXPECT_EQ(json::get_string(w, "issuingAuthority"), "Gia Lai Provincial People's Court");
    EXPECT_EQ(json::get_string(w["charges"][0]["statute"], "jurisdiction"), "VN");
    EXPECT_EQ(check(vietnamese.message, "kh-stungtreng").status, 0);
    rapidjson::Pointer("/warrant/court")
        .Set(doc, "Stung Treng Provincial Court (issuing country: KHM)");
    auto cambodian = decode(doc, ctx("kh-stungtreng"));
    ASSERT_EQ(cambodian.status, 0) << describe(cambodian.errors);
    EXPECT_EQ(cambodian.message["body"]["warrants"],
              golden("wanted-person.expected.json")["body"]["warrants"])
        << json::to_string(cambodian.message["body"]["warrants"]);
  }
}

TEST_F(KhCnp, TheCourtSaysWhichCountryIssuedTheWarrant) {
  // Stung Treng passing on a Thai warrant under its own msg_no: the message says it is Thai.
  auto doc = golden("wanted-person.kh.json");
  rapidjson::Pointer("/warrant/court")
      .Set(doc, "Ubon Ratchathani Provincial Court  (Issuing Country:  tha )");
  auto thai = decode(doc, ctx("kh-stungtreng"));
  ASSERT_EQ(thai.status, 0) << describe(thai.errors);
  const auto& w = thai.message["body"]["warrants"][0];
  EXPECT_EQ(json::get_string(w, "issuingCountry"), "TH");
  EXPECT_EQ(json::get_string(w, "issuingAuthority"), "Ubon Ratchathani Provincial Court");
  EXPECT_EQ(json::get_string(w["charges"][0]["statute"], "jurisdiction"), "TH");
  EXPECT_EQ(check(thai.message, "kh-stungtreng").status, 0);

  // The country alone, without a court.
  rapidjson::Pointer("/warrant/court").Set(doc, "(issuing country: LAO)");
  auto lao = decode(doc, ctx("kh-stungtreng"));
  ASSERT_EQ(lao.status, 0) << describe(lao.errors);
  EXPECT_EQ(json::get_string(lao.message["body"]["warrants"][0], "issuingCountry"), "LA");
  EXPECT_FALSE(lao.message["body"]["warrants"][0].HasMember("issuingAuthority"));

  // Sent by a unit that is not Cambodian, a warrant that does not say its country is refused.
  auto from_vietnam = golden("wanted-person.kh.json");
  rapidjson::Pointer("/from_unit/code").Set(from_vietnam, "VN-30-CA");
  expect_only_refusal(decode(from_vietnam, ctx("kh-stungtreng")), "/warrant",
                      "from_unit is not a Cambodian unit");
  rapidjson::Pointer("/warrant/court").Set(from_vietnam, "(issuing country: VNM)");
  auto said = decode(from_vietnam, ctx("kh-stungtreng"));
  ASSERT_EQ(said.status, 0) << describe(said.errors);
  EXPECT_EQ(json::get_string(said.message["body"]["warrants"][0], "issuingCountry"), "VN");

  // A Cambodian unit's own warrant without a mark is Cambodian (the golden example), whatever
  // the case of its unit code.
  auto lower_case_unit = golden("wanted-person.kh.json");
  rapidjson::Pointer("/from_unit/code").Set(lower_case_unit, "kh-19-pc");
  auto own = decode(lower_case_unit, ctx("kh-stungtreng"));
  ASSERT_EQ(own.status, 0) << describe(own.errors);
  EXPECT_EQ(json::get_string(own.message["body"]["warrants"][0], "issuingCountry"), "KH");
}

TEST_F(KhCnp, AnUnknownOrContradictoryIssuingCountryIsRefused) {
  struct bad_court {
    const char* court;
    const char* words;
  };
  const bad_court cases[] = {
      {"Stung Treng Provincial Court (issuing country: XYZ)", "unknown code 'XYZ' (table country)"},
      {"Stung Treng Provincial Court (issuing country: KH)", "unknown code 'KH' (table country)"},
      {"Stung Treng Provincial Court (issuing country: )", "unknown code '' (table country)"},
      {"Stung Treng Provincial Court (issuing country: KHM) (issuing country: VNM)",
       "names more than one issuing country ('KHM', 'VNM')"},
      {"(issuing country: VNM) Stung Treng Provincial Court", "other than at its end"},
      {"Stung Treng Provincial Court (issuing country: VNM", "other than at its end"},
  };
  for (const auto& c : cases) {
    for (const bool carry : {false, true}) {
      SCOPED_TRACE(std::string(c.court) + (carry ? " (carry)" : ""));
      auto doc = golden("wanted-person.kh.json");
      rapidjson::Pointer("/warrant/court").Set(doc, c.court);
      // The issuing country is never carried in `unmapped` with another one made up beside it.
      expect_only_refusal(decode(doc, ctx("kh-stungtreng", carry)), "/warrant/court", c.words);
    }
  }
}

TEST_F(KhCnp, AWarrantGoesOutNamingTheCountryThatIssuedIt) {
  adapter_context out = ctx("kh-stungtreng");
  out.recipient = "kh-ratanakiri";
  // A Cambodian warrant says so too: the court is the one place the format has for it.
  const auto cambodian = decode(golden("wanted-person.kh.json"), ctx("kh-stungtreng"));
  ASSERT_EQ(cambodian.status, 0) << describe(cambodian.errors);
  const auto sent = kh()->encode(cambodian.message, out);
  ASSERT_EQ(sent.status, 0) << describe(sent.errors);
  EXPECT_EQ(json::get_string(parse(sent.bytes)["warrant"], "court"),
            "Stung Treng Provincial Court (issuing country: KHM)");

  // Without an authority, the country alone; it comes back without an authority.
  auto m = example("person.wanted");
  rapidjson::Pointer("/body/warrants/0/issuingAuthority").Erase(m);
  const auto bare = kh()->encode(m, out);
  ASSERT_EQ(bare.status, 0) << describe(bare.errors);
  EXPECT_EQ(json::get_string(parse(bare.bytes)["warrant"], "court"), "(issuing country: VNM)");
  const auto back = kh()->decode(bare.bytes, ctx("vn-gialai"));
  ASSERT_EQ(back.status, 0) << describe(back.errors);
  EXPECT_EQ(json::get_string(back.message["body"]["warrants"][0], "issuingCountry"), "VN");
  EXPECT_FALSE(back.message["body"]["warrants"][0].HasMember("issuingAuthority"));

  // What would make the country unsayable is refused, naming the canonical field.
  struct refusal {
    const char* pointer;
    const char* value;
    const char* at;
  };
  const std::string long_authority(240, 'A');
  const refusal cases[] = {
      {"/body/warrants/0/issuingCountry", "ZZ", "/body/warrants/0/issuingCountry"},
      {"/body/warrants/0/issuingAuthority", "Tòa án tỉnh Gia Lai (issuing country: KHM)",
       "/body/warrants/0/issuingAuthority"},
      {"/body/warrants/0/issuingAuthority", long_authority.c_str(),
       "/body/warrants/0/issuingAuthority"},
  };
  for (const auto& r : cases) {
    SCOPED_TRACE(r.pointer + std::string(" = ") + r.value);
    auto bad = example("person.wanted");
    rapidjson::Pointer(r.pointer).Set(bad, r.value);
    const auto refused = kh()->encode(bad, out);
    EXPECT_EQ(refused.status, 422);
    EXPECT_TRUE(refused.bytes.empty());
    ASSERT_EQ(refused.errors.size(), 1u) << describe(refused.errors);
    EXPECT_EQ(refused.errors[0].pointer, r.at);
  }
  // A further warrant is dropped as before; the first one's country is what is said.
  auto two = example("person.wanted");
  rapidjson::Value second(two["body"]["warrants"][0], two.GetAllocator());
  second["issuingCountry"] = "KH";
  two["body"]["warrants"].PushBack(second, two.GetAllocator());
  EXPECT_EQ(json::get_string(parse(kh()->encode(two, out).bytes)["warrant"], "court"),
            "Cơ quan Cảnh sát điều tra Công an tỉnh Gia Lai (issuing country: VNM)");
}

TEST_F(KhCnp, VerificationRequestTakesItsPurposeFromTheFirstQuestion) {
  const auto doc = kh_message("VERIFY_REQUEST", std::string(subject_json) + R"(,
      "questions": ["ADDRESS", "FAMILY_TRACING"],
      "narrative_en": "Does her mother still live in Kep?\r\n\nWho is her guardian?")");
  const auto result = decode(doc, ctx("kh-kep"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  const auto& body = result.message["body"];
  EXPECT_EQ(json::get_string(body, "purpose"), "identity");
  EXPECT_EQ(json::to_string(body["questions"]),
            R"(["ADDRESS","FAMILY_TRACING","Does her mother still live in Kep?",)"
            R"("Who is her guardian?"])");
  EXPECT_EQ(check(result.message, "kh-kep").status, 0);

  const auto unknown = kh_message(
      "VERIFY_REQUEST", std::string(subject_json) + R"(, "questions": ["CRIMINAL_RECORD"])");
  const auto refused = decode(unknown);
  EXPECT_TRUE(has_error(refused.errors, "/questions/0", "'CRIMINAL_RECORD'"));
  EXPECT_TRUE(has_error(refused.errors, "/questions", "needs one of"));
}

TEST_F(KhCnp, ReplyToIsTheAnsweredIdOrElseTheThread) {
  const auto by_id = kh_message("VERIFY_REPLY", std::string(subject_json) + R"(,
      "reply_to": "5D0E9B27-8C6F-4A13-A2D4-7E3B1F6C9085",
      "answer": {"result": "PARTIAL", "note_en": "Family found; identity card not on record."})");
  const auto result = decode(by_id, ctx("kh-kep"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_EQ(json::get_string(result.message, "inReplyTo"), "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085");
  EXPECT_EQ(json::get_string(result.message["body"], "result"), "partial");
  EXPECT_EQ(json::get_string(result.message["body"]["notes"], "lang"), "eng");
  EXPECT_TRUE(result.message["body"].HasMember("matched"));
  EXPECT_EQ(check(result.message, "kh-kep").status, 0);

  // A reference the gateway did not write (a request the commissariat got another way): no
  // link is made up; the reference stays as the thread.
  auto by_reference = parse(json::to_string(by_id));
  rapidjson::Pointer("/reply_to").Set(by_reference, "KEP-VR-2026-000004");
  const auto thread = decode(by_reference, ctx("kh-kep"));
  ASSERT_EQ(thread.status, 0);
  EXPECT_FALSE(thread.message.HasMember("inReplyTo"));
  EXPECT_EQ(json::get_string(thread.message, "caseRef"), "KEP-VR-2026-000004");

  rapidjson::Pointer("/reply_to").Erase(by_reference);
  EXPECT_TRUE(has_error(decode(by_reference).errors, "/reply_to", "is required"));
}

TEST_F(KhCnp, AnAnswerToTheCommissariatsOwnRequestNamesItsMsgNo) {
  // Gia Lai's answer to a request Ratanakiri sent as RTK-VR-2026-000777 (the gateway gave it
  // the id the answer names; Ratanakiri never learned that id).
  const auto result = example("verification.result");
  const std::string answered(json::get_string(result, "inReplyTo"));
  adapter_context out = ctx("vn-gialai");
  out.recipient = "kh-ratanakiri";
  out.answered_id = answered;
  out.answered_reference = "RTK-VR-2026-000777";
  auto sent = kh()->encode(result, out);
  ASSERT_EQ(sent.status, 0) << describe(sent.errors);
  EXPECT_EQ(json::get_string(parse(sent.bytes), "reply_to"), "RTK-VR-2026-000777");
  // Named in upper case, the same message.
  std::string upper = answered;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  out.answered_id = upper;
  sent = kh()->encode(result, out);
  EXPECT_EQ(json::get_string(parse(sent.bytes), "reply_to"), "RTK-VR-2026-000777");
  // A reference for another message changes nothing: the gateway id.
  out.answered_id = "00000000-0000-4000-8000-000000000000";
  sent = kh()->encode(result, out);
  EXPECT_EQ(json::get_string(parse(sent.bytes), "reply_to"), answered);
}

TEST_F(KhCnp, AReplyNamingTheMsgNoTheGatewaySentIsLinkedToThatMessage) {
  // The request Gia Lai sent Ratanakiri, as Ratanakiri received it.
  const auto request = example("verification.request");
  adapter_context out = ctx("vn-gialai");
  out.recipient = "kh-ratanakiri";
  const auto sent = kh()->encode(request, out);
  ASSERT_EQ(sent.status, 0) << describe(sent.errors);
  const std::string msg_no(json::get_string(parse(sent.bytes), "msg_no"));
  EXPECT_EQ(msg_no, "VN30-VR-2026-000088/5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085")
      << "the officer sees Gia Lai's reference; the reply can name the message exactly";

  // Ratanakiri answers it by that msg_no: the result answers the request (the deadline watch
  // reads inReplyTo), not merely a thread.
  auto reply = kh_message("VERIFY_REPLY",
                          std::string(subject_json) + R"(, "answer": {"result": "CONFIRMED"})");
  rapidjson::Pointer("/reply_to").Set(reply, msg_no.c_str());
  const auto result = decode(reply, ctx("kh-ratanakiri"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_EQ(json::get_string(result.message, "inReplyTo"), json::get_string(request, "id"));
  EXPECT_FALSE(result.message.HasMember("caseRef"));
  EXPECT_EQ(check(result.message, "kh-ratanakiri").status, 0);

  // A receipt for it the same way.
  auto receipt = kh_message("RECEIPT", R"("status": "RECEIVED")");
  rapidjson::Pointer("/reply_to").Set(receipt, msg_no.c_str());
  const auto acknowledged = decode(receipt, ctx("kh-ratanakiri"));
  ASSERT_EQ(acknowledged.status, 0) << describe(acknowledged.errors);
  EXPECT_EQ(json::get_string(acknowledged.message, "inReplyTo"), json::get_string(request, "id"));
  EXPECT_EQ(json::get_string(acknowledged.message["body"], "inReplyTo"),
            json::get_string(request, "id"));

  // A message without ref is named by its id alone; a ref too long to share the 128 characters
  // with the id gives way to the id.
  auto without_ref = example("verification.request");
  without_ref.RemoveMember("ref");
  EXPECT_EQ(json::get_string(parse(kh()->encode(without_ref, out).bytes), "msg_no"),
            "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085");
  auto long_ref = example("verification.request");
  long_ref["ref"].SetString(std::string(92, 'R').c_str(), long_ref.GetAllocator());
  EXPECT_EQ(json::get_string(parse(kh()->encode(long_ref, out).bytes), "msg_no"),
            "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085");
  long_ref["ref"].SetString(std::string(91, 'R').c_str(), long_ref.GetAllocator());
  EXPECT_EQ(json::get_string(parse(kh()->encode(long_ref, out).bytes), "msg_no").size(), 128u);
}

TEST_F(KhCnp, ADamagedGatewayReferenceIsRefusedWithoutEchoingIt) {
  const std::string damaged[] = {
      "VN30-VR-2026-000088/5d0e9b27-8c6f-4a13-a2d4-7e3b1f6cZZZZ",     // id part not hex
      "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c908g",                         // a UUID with a typo
      "VN30-VR-2026-000088/5d0e9b27-8c6f\\n-4a13-a2d4-7e3b1f6c9085",  // a line break inside
  };
  for (const auto& reference : damaged) {
    SCOPED_TRACE(reference);
    for (const char* kind : {"VERIFY_REPLY", "RECEIPT"}) {
      const std::string extra = std::string(kind) == "RECEIPT"
                                    ? R"("status": "RECEIVED", "reply_to": ")" + reference + "\""
                                    : std::string(subject_json) +
                                          R"(, "answer": {"result": "CONFIRMED"}, "reply_to": ")" +
                                          reference + "\"";
      const auto result = decode(kh_message(kind, extra), ctx("kh-ratanakiri"));
      EXPECT_EQ(result.status, 422) << kind;
      EXPECT_TRUE(has_error(result.errors, "/reply_to", "is not a reference the gateway wrote"))
          << kind << describe(result.errors);
      EXPECT_TRUE(result.message.IsNull());
      for (const auto& e : result.errors) {
        EXPECT_EQ(e.reason.find("5d0e9b27"), std::string::npos) << e.reason;
        EXPECT_EQ(e.reason.find("VN30"), std::string::npos) << e.reason;
      }
    }
  }
  // Not a string at all: refused as before.
  const auto number = kh_message("RECEIPT", R"("status": "RECEIVED", "reply_to": 88)");
  EXPECT_TRUE(has_error(decode(number).errors, "/reply_to", "must be a string"));
}

TEST_F(KhCnp, AReferenceOnAnotherKindIsKeptAsTheThreadButNotSentBack) {
  // A referral following up a tip by its msg_no: the reference is kept (caseRef); going out,
  // caseRef becomes reply_to only on a VERIFY_REPLY, where KH-CNP needs one.
  const auto result = decode(victim_with("/reply_to", "RTK-2026-000101"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_EQ(json::get_string(result.message, "caseRef"), "RTK-2026-000101");
  adapter_context c = ctx();
  c.recipient = "kh-stungtreng";
  const auto encoded = kh()->encode(result.message, c);
  ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
  EXPECT_FALSE(parse(encoded.bytes).HasMember("reply_to"));
}

TEST_F(KhCnp, ReceiptsAnswerAGatewayIdOrAnyReference) {
  const auto rejected = kh_message("RECEIPT", R"("reply_to": "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17",
      "status": "REJECTED", "reason": "subject unknown to this commissariat")");
  const auto result = decode(rejected, ctx("kh-kep"));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  const auto expected = parse(R"({"inReplyTo": "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17",
      "status": "rejected", "received": "2026-12-01T00:00:00Z",
      "errors": [{"reason": "subject unknown to this commissariat"}]})");
  EXPECT_EQ(result.message["body"], expected) << json::to_string(result.message["body"]);
  EXPECT_EQ(json::get_string(result.message, "inReplyTo"), "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17");
  EXPECT_EQ(check(result.message, "kh-kep").status, 0);

  // The spec's RECEIPT names "the msg_no or id received": a msg_no the gateway cannot tie to a
  // message (one written before it named messages "<ref>/<id>") is still an acknowledgement,
  // accepted. The canonical body must name a UUID: a placeholder that names no message; the
  // envelope makes no link; the reference is kept as the thread and goes out again as written.
  const auto by_msg_no =
      kh_message("RECEIPT", R"("reply_to": "VN30-2026-000457", "status": "RECEIVED")");
  const auto receipt = decode(by_msg_no, ctx("kh-kep"));
  ASSERT_EQ(receipt.status, 0) << describe(receipt.errors);
  EXPECT_FALSE(receipt.message.HasMember("inReplyTo"));
  EXPECT_EQ(json::get_string(receipt.message, "caseRef"), "VN30-2026-000457");
  EXPECT_EQ(json::get_string(receipt.message["body"], "inReplyTo"),
            message_uuid("kh-cnp:reply-to", "VN30-2026-000457"));
  EXPECT_EQ(json::get_string(receipt.message["body"], "status"), "received");
  EXPECT_EQ(check(receipt.message, "kh-kep").status, 0);
  adapter_context back = ctx("kh-kep");
  back.recipient = "kh-ratanakiri";
  const auto encoded = kh()->encode(receipt.message, back);
  ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
  EXPECT_EQ(json::get_string(parse(encoded.bytes), "reply_to"), "VN30-2026-000457");

  const auto with_subject = kh_message(
      "RECEIPT",
      std::string(subject_json) +
          R"(, "reply_to": "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17", "status": "RECEIVED")");
  EXPECT_TRUE(has_error(decode(with_subject).errors, "/subject", "not used on a RECEIPT"));
}

TEST_F(KhCnp, AReceivedReceiptKeepsItsReasonAsANoteNotAsErrors) {
  // Canonical errors belong to a rejection (config/schema/body/receipt.json): the reason of a
  // RECEIVED receipt is a note on an acknowledgement, kept in `unmapped` under its KH pointer
  // whether or not the partner carries unmapped values, and sent back as written.
  const std::string note = "ទទួលបាន ប៉ុន្តែរូបថតមិនច្បាស់ / photo illegible, please resend";
  const auto received = kh_message("RECEIPT", R"("reply_to": "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17",
      "status": "RECEIVED", "reason": ")" + note + "\"");
  for (const bool carry : {false, true}) {
    SCOPED_TRACE(carry ? "carryUnmapped" : "no carryUnmapped");
    const auto result = decode(received, ctx("kh-kep", carry));
    ASSERT_EQ(result.status, 0) << describe(result.errors);
    EXPECT_EQ(result.message["body"], parse(R"({"inReplyTo": "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17",
        "status": "received", "received": "2026-12-01T00:00:00Z"})"))
        << json::to_string(result.message["body"]);
    ASSERT_TRUE(result.message.HasMember("unmapped")) << json::to_string(result.message);
    EXPECT_EQ(result.message["unmapped"], parse(R"({"/reason": ")" + note + "\"}"));
    EXPECT_EQ(check(result.message, "kh-kep").status, 0);

    // Going out to a commissariat, the note is the reason again; back, it is the same message.
    adapter_context out = ctx("kh-kep");
    out.recipient = "kh-ratanakiri";
    const auto encoded = kh()->encode(result.message, out);
    ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
    const auto kh_doc = parse(encoded.bytes);
    EXPECT_EQ(json::get_string(kh_doc, "status"), "RECEIVED");
    EXPECT_EQ(json::get_string(kh_doc, "reason"), note);
    const auto again = kh()->decode(encoded.bytes, ctx("kh-kep"));
    ASSERT_EQ(again.status, 0) << describe(again.errors);
    EXPECT_EQ(again.message["unmapped"], result.message["unmapped"]);
    EXPECT_EQ(again.message["body"], result.message["body"]);
  }

  // A REJECTED receipt's reason stays its error, and nothing is kept beside it.
  const auto rejected = decode(kh_message("RECEIPT", R"("reply_to": "VN30-2026-000457",
      "status": "REJECTED", "reason": ")" + note + "\""));
  ASSERT_EQ(rejected.status, 0) << describe(rejected.errors);
  EXPECT_FALSE(rejected.message.HasMember("unmapped"));
  EXPECT_EQ(json::get_string(rejected.message["body"]["errors"][0], "reason"), note);

  // A canonical rejection goes out with its errors, not with a note it may have kept; an
  // acknowledgement a canonical sender listed errors on still says them.
  auto canonical = example("receipt");
  auto& a = canonical.GetAllocator();
  rapidjson::Value unmapped(rapidjson::kObjectType);
  unmapped.AddMember("/reason", "kept note", a);
  canonical.AddMember("unmapped", unmapped, a);
  canonical["body"]["status"] = "rejected";
  rapidjson::Value errors(rapidjson::kArrayType);
  rapidjson::Value error(rapidjson::kObjectType);
  error.AddMember("pointer", "/body/person/sex", a);
  error.AddMember("reason", "is not a known sex code", a);
  errors.PushBack(error, a);
  canonical["body"].AddMember("errors", errors, a);
  adapter_context out = ctx("vn-gialai");
  out.recipient = "kh-ratanakiri";
  const auto refusal = kh()->encode(canonical, out);
  ASSERT_EQ(refusal.status, 0) << describe(refusal.errors);
  EXPECT_EQ(json::get_string(parse(refusal.bytes), "reason"),
            "/body/person/sex is not a known sex code");
  canonical["body"]["status"] = "received";
  canonical.RemoveMember("unmapped");
  const auto listed = kh()->encode(canonical, out);
  ASSERT_EQ(listed.status, 0) << describe(listed.errors);
  EXPECT_EQ(json::get_string(parse(listed.bytes), "status"), "RECEIVED");
  EXPECT_EQ(json::get_string(parse(listed.bytes), "reason"),
            "/body/person/sex is not a known sex code");

  // A reason that is not text or too long is refused at its pointer, without echoing it.
  const std::string long_note(2001, 'x');
  for (const std::string& bad :
       {std::string(R"("reason": 7)"), std::string(R"("reason": ")") + long_note + "\""}) {
    const auto result = decode(kh_message("RECEIPT", R"("reply_to": "VN30-2026-000457",
        "status": "RECEIVED", )" + bad));
    EXPECT_EQ(result.status, 422);
    EXPECT_TRUE(has_error(result.errors, "/reason")) << describe(result.errors);
    for (const auto& e : result.errors) {
      EXPECT_EQ(e.reason.find("xxx"), std::string::npos) << e.reason;
    }
  }
}

TEST_F(KhCnp, PhotosAreCheckedAgainstTheirDigest) {
  const std::string image = "\xFF\xD8\xFF\xE0 not really a jpeg";
  const std::string b64 = "/9j/4CBub3QgcmVhbGx5IGEganBlZw==";
  auto doc = golden("victim-referral.kh.json");
  auto& a = doc.GetAllocator();
  rapidjson::Value photo(rapidjson::kObjectType);
  photo.AddMember("kind", "PHOTO", a);
  photo.AddMember("mime", "image/jpeg", a);
  photo.AddMember("b64", rapidjson::Value(b64.c_str(), a), a);
  rapidjson::Value attachments(rapidjson::kArrayType);
  attachments.PushBack(photo, a);
  doc.AddMember("attachments", attachments, a);

  const auto computed = decode(doc);
  ASSERT_EQ(computed.status, 0) << describe(computed.errors);
  const auto& photos = computed.message["body"]["person"]["photos"];
  ASSERT_EQ(photos.Size(), 1u);
  EXPECT_EQ(json::get_string(photos[0], "sha256"), sha256_hex(image));
  EXPECT_EQ(json::get_string(photos[0], "data"), b64);

  std::string upper = sha256_hex(image);
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  rapidjson::Pointer("/attachments/0/sha256").Set(doc, upper.c_str());
  EXPECT_EQ(decode(doc).status, 0) << "upper-case hex is the same digest";
  rapidjson::Pointer("/attachments/0/sha256").Set(doc, std::string(64, '0').c_str());
  EXPECT_TRUE(has_error(decode(doc).errors, "/attachments/0/sha256", "not the SHA-256"));
  rapidjson::Pointer("/attachments/0/b64").Set(doc, "not base64!");
  EXPECT_TRUE(has_error(decode(doc).errors, "/attachments/0/b64", "base64"));
}

// --- encode refusals -----------------------------------------------------------------------------

TEST_F(KhCnp, WhatKhRequiresButCannotBeProducedIsA422NamingTheCanonicalField) {
  adapter_context c = ctx("vn-gialai");
  c.recipient = "kh-ratanakiri";
  struct refusal {
    std::string type;
    const char* pointer;
    const char* erase_or_set;
    const char* value;
  };
  const refusal cases[] = {
      {"victim.identification", "/body/status", "/body/status", "not-a-victim"},
      {"victim.identification", "/body/person", "/body/person", nullptr},
      {"person.wanted", "/body/warrants", "/body/warrants", nullptr},
      {"verification.request", "/body/purpose", "/body/purpose", "criminal-record"},
      {"verification.result", "/body/matched", "/body/matched", nullptr},
      {"verification.result", "/inReplyTo", "/inReplyTo", nullptr},
      {"hotline.tip", "/body/subjects", "/body/subjects/0/person", nullptr},
  };
  for (const auto& r : cases) {
    SCOPED_TRACE(r.type + " " + r.pointer);
    auto m = example(r.type);
    if (r.value == nullptr) {
      rapidjson::Pointer(r.erase_or_set).Erase(m);
    } else {
      rapidjson::Pointer(r.erase_or_set).Set(m, r.value);
    }
    if (r.type == "hotline.tip") {
      rapidjson::Pointer("/body/subjects/0/description").Set(m, "A girl of about 15");
    }
    if (std::string_view(r.pointer) == "/inReplyTo") {
      rapidjson::Pointer("/caseRef").Erase(m);
    }
    const auto encoded = kh()->encode(m, c);
    EXPECT_EQ(encoded.status, 422);
    EXPECT_TRUE(has_error(encoded.errors, r.pointer)) << describe(encoded.errors);
  }
}

TEST_F(KhCnp, AWithheldCopyEncodesNormally) {
  auto m = example("hotline.tip");
  auto& a = m.GetAllocator();
  m["body"]["summary"].SetObject();
  m["body"]["summary"].AddMember("text", "[withheld]", a);
  rapidjson::Value entry(rapidjson::kObjectType);
  entry.AddMember("pointer", "/body/summary", a);
  entry.AddMember("reason", "no-victim-data-agreement", a);
  rapidjson::Value withheld(rapidjson::kArrayType);
  withheld.PushBack(entry, a);
  m.AddMember("withheld", withheld, a);
  adapter_context c = ctx("vn-gialai");
  c.recipient = "kh-stungtreng";
  const auto encoded = kh()->encode(m, c);
  ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
  const auto kh_doc = parse(encoded.bytes);
  EXPECT_EQ(json::get_string(kh_doc["tip"], "summary_en"), "[withheld]");
  EXPECT_FALSE(kh_doc.HasMember("withheld"));
  EXPECT_EQ(json::get_string(kh_doc["to_unit"], "code"), "kh-stungtreng");
}

// --- receipts and error bodies -------------------------------------------------------------------

TEST_F(KhCnp, TheReceiptNamesThePartnersOwnMsgNo) {
  // As the inbound route asks for it: the partner as recipient, no sender.
  receipt_info info{"f40ec925-ef3a-59db-9e2f-d67d0cc8236f", "RTK-2026-000123",
                    "2026-11-21T02:42:11.250Z", "kh-ratanakiri"};
  const adapter_context c{.tables = &checker_->tables(), .recipient = "kh-ratanakiri"};
  const auto receipt = parse(kh()->encode_receipt(info, c));
  const auto expected = parse(R"({"format": "KH-CNP-XCHG/2", "msg_kind": "RECEIPT",
      "sent_at": "21/11/2026 09:42:11 +07:00", "from_unit": {"code": "mxgw"},
      "to_unit": {"code": "kh-ratanakiri"}, "reply_to": "RTK-2026-000123",
      "classification": "NORMAL", "status": "RECEIVED"})");
  EXPECT_EQ(json::get_string(receipt, "msg_no"), message_uuid("mxgw-receipt", info.message_id))
      << "the same accepted message always gets the same receipt";
  rapidjson::Document without_msg_no;
  without_msg_no.CopyFrom(receipt, without_msg_no.GetAllocator());
  without_msg_no.RemoveMember("msg_no");
  EXPECT_EQ(without_msg_no, expected) << json::to_string(receipt);

  info.reference.clear();
  info.accepted_at.clear();
  adapter_context at_noon = c;
  at_noon.now = std::chrono::sys_days{std::chrono::year{2026} / 11 / 21} + std::chrono::hours{5};
  const auto by_id = parse(kh()->encode_receipt(info, at_noon));
  EXPECT_EQ(json::get_string(by_id, "reply_to"), info.message_id);
  EXPECT_EQ(json::get_string(by_id, "sent_at"), "21/11/2026 12:00:00 +07:00");
}

TEST_F(KhCnp, ErrorBodiesListEveryLocatedProblem) {
  const auto body = kh()->encode_error(
      422, "Message cannot be translated",
      {{"/case/exploitation/1", "unknown code 'X' (table exploitation)"}, {"/sent_at", "bad"}});
  EXPECT_EQ(parse(body), parse(R"({"error": "Message cannot be translated: /case/exploitation/1 )"
                               R"(unknown code 'X' (table exploitation); /sent_at bad"})"));
  EXPECT_EQ(parse(kh()->encode_error(400, "Malformed message", {})),
            parse(R"({"error": "Malformed message"})"));
  EXPECT_EQ(parse(kh()->encode_error(400, "Malformed message", {{"", "not JSON \"x\""}})),
            parse(R"({"error": "Malformed message: not JSON \"x\""})"));
}

}  // namespace
}  // namespace mxgw::adapters
