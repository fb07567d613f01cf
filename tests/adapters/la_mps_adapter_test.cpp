// Tests of the LA-MPS-XML/1.3 adapter: golden files, round trips (golden, config examples and
// generated messages), the XML hardening and every refusal.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/common/references.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::adapters {
namespace {

namespace fs = std::filesystem;
using json_value = rapidjson::Value;

const std::string la_sender = "la-houaphanh";

fs::path golden_dir() {
  return test::source_dir() / "tests/adapters/golden/la-mps";
}

std::string pretty(const json_value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  const auto error = json::parse_untrusted(text, doc);
  EXPECT_FALSE(error) << (error ? error->reason : "");
  return doc;
}

std::string errors_text(const std::vector<field_error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += "[" + e.pointer + "] " + e.reason + "\n";
  }
  return out;
}

/// `xml` with the first `from` replaced by `to`.
std::string replaced(std::string xml, const std::string& from, const std::string& to) {
  const auto at = xml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) {
    xml.replace(at, from.size(), to);
  }
  return xml;
}

/// `m` as it comes back from an LA-MPS partner that echoes what the gateway sent it as sent by
/// `sender`: `ref` is the gateway's name for the message (<ref>/<id>), `id` derived from it.
rapidjson::Document renamed_by_gateway(const json_value& m, const std::string& sender) {
  rapidjson::Document out;
  out.CopyFrom(m, out.GetAllocator());
  const auto ref_member = m.FindMember("ref");
  const std::string ref = outbound_reference(
      ref_member != m.MemberEnd() ? ref_member->value.GetString() : "", m["id"].GetString());
  if (out.HasMember("ref")) {
    out["ref"].SetString(ref.c_str(), out.GetAllocator());
  } else {
    out.AddMember("ref", json_value(ref.c_str(), out.GetAllocator()), out.GetAllocator());
  }
  out["id"].SetString(message_uuid(sender, ref).c_str(), out.GetAllocator());
  return out;
}

/// Shared fixture: the real canonical checker (config/schema, config/mappings) and the adapter.
class LaMps : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<pipeline::config_problem> problems;
    checker_ = std::make_unique<pipeline::canonical_checker>(pipeline::canonical_checker::load(
        test::source_dir() / "config/schema", test::source_dir() / "config/mappings", problems));
    ASSERT_TRUE(problems.empty());
  }
  static void TearDownTestSuite() { checker_.reset(); }

  static const adapter& la() {
    const adapter* a = find_adapter("la-mps");
    EXPECT_NE(a, nullptr);
    return *a;
  }

  static adapter_context context(const std::string& sender = la_sender, bool carry = false) {
    adapter_context ctx;
    ctx.tables = &checker_->tables();
    ctx.sender = sender;
    ctx.recipient = "la-attapeu";
    ctx.carry_unmapped = carry;
    return ctx;
  }

  /// Runs the real canonical checker on `message` as sent by `sender`; returns its verdict.
  static pipeline::check_result check(const json_value& message, const std::string& sender) {
    rapidjson::Document parsed;
    return checker_->check(json::to_string(message), sender, parsed);
  }

  static void expect_canonical(const json_value& message, const std::string& sender) {
    const auto verdict = check(message, sender);
    EXPECT_EQ(verdict.status, 0) << verdict.detail << "\n"
                                 << errors_text(verdict.errors) << pretty(message);
  }

  static decode_result decode_ok(const std::string& xml, const std::string& sender = la_sender,
                                 bool carry = false) {
    auto result = la().decode(xml, context(sender, carry));
    EXPECT_EQ(result.status, 0) << errors_text(result.errors) << xml;
    return result;
  }

  static std::string encode_ok(const json_value& message) {
    auto result = la().encode(message, context());
    EXPECT_EQ(result.status, 0) << errors_text(result.errors) << pretty(message);
    return result.bytes;
  }

  static void expect_refused(const std::string& xml, int status, const std::string& pointer,
                             const std::string& reason_part, bool carry = false) {
    const auto result = la().decode(xml, context(la_sender, carry));
    EXPECT_EQ(result.status, status) << xml;
    EXPECT_TRUE(result.message.IsNull());
    bool found = false;
    for (const auto& e : result.errors) {
      found = found || (e.pointer == pointer && e.reason.find(reason_part) != std::string::npos);
    }
    EXPECT_TRUE(found) << "wanted [" << pointer << "] ..." << reason_part << "... in\n"
                       << errors_text(result.errors);
  }

  static std::unique_ptr<pipeline::canonical_checker> checker_;
};

std::unique_ptr<pipeline::canonical_checker> LaMps::checker_;

// A minimal valid victim message around `person` and `victim` fragments; a `victim` fragment
// without an <Exploitation> gets one (LA-MPS requires one or more).
std::string victim_xml(const std::string& person, const std::string& victim,
                       const std::string& root_extra = "") {
  const std::string exploitation = victim.find("<Exploitation") == std::string::npos
                                       ? "<Exploitation>labour</Exploitation>"
                                       : "";
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<LaoPoliceMessage version="1.3" type="victim" ref="HP-2569-0099" date="20/11/2569" )"
         R"(time="14:05" classification="ລັບ")" +
         root_extra + ">\n<Person role=\"victim\">" + person +
         "</Person>\n<Victim status=\"identified\">" + exploitation + victim +
         "</Victim>\n</LaoPoliceMessage>\n";
}

// The start and end of a hotline message, for documents that attack the parser through its text.
const std::string hotline_head =
    R"(<LaoPoliceMessage version="1.3" type="hotline" ref="X" date="20/11/2569" time="14:05" )"
    R"(classification="general"><Hotline line="1300" received="20/11/2569 14:00" )"
    R"(urgency="high">)";
const std::string hotline_tail = "</Hotline></LaoPoliceMessage>";
const std::string xinclude_ns = R"( xmlns:xi="http://www.w3.org/2001/XInclude")";

const std::string plain_person = R"(<Name script="latin" family="PHOMMAVONG" given="KHAMLA"/>)";

// ---------------------------------------------------------------------------------------------

TEST_F(LaMps, IsRegisteredAsXml) {
  const auto ids = adapter_ids();
  EXPECT_NE(std::find(ids.begin(), ids.end(), "la-mps"), ids.end());
  EXPECT_EQ(la().id(), "la-mps");
  EXPECT_EQ(la().content_type(), "application/xml");
}

// Golden files: <name>.xml decodes to <name>.json (compared as parsed documents), passes the
// real canonical checker, and survives decode -> encode -> decode. MXGW_UPDATE_GOLDEN=1 rewrites
// the .json files from the adapter's output, for review in the diff.
class LaMpsGolden : public LaMps, public ::testing::WithParamInterface<std::string> {};

TEST_P(LaMpsGolden, DecodesToTheExpectedCanonicalMessage) {
  const std::string name = GetParam();
  const std::string xml = test::read_file(golden_dir() / (name + ".xml"));
  auto decoded = decode_ok(xml);
  ASSERT_TRUE(decoded.message.IsObject());
  const fs::path expected_path = golden_dir() / (name + ".json");
  if (std::getenv("MXGW_UPDATE_GOLDEN") != nullptr) {
    test::write_file(expected_path, pretty(decoded.message));
  }
  const auto expected = parse_json(test::read_file(expected_path));
  EXPECT_TRUE(decoded.message == expected) << "decoded:\n"
                                           << pretty(decoded.message) << "expected:\n"
                                           << pretty(expected);
  expect_canonical(decoded.message, la_sender);

  const std::string again = encode_ok(decoded.message);
  auto redecoded = decode_ok(again);
  // The ref sent names the message (<ref>/<id>): that is the one change, and only once. A
  // warrant comes back under that ref with its country, which its authority names.
  EXPECT_TRUE(redecoded.message == renamed_by_gateway(decoded.message, la_sender))
      << again << pretty(redecoded.message);
  EXPECT_EQ(encode_ok(redecoded.message), again);  // a fixpoint after one round
}

INSTANTIATE_TEST_SUITE_P(Examples, LaMpsGolden,
                         ::testing::Values("victim", "receipt", "wanted", "hotline",
                                           "verify-request", "verify-reply"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// The two golden files victim.xml and receipt.xml are the examples of the partner description,
// byte for byte (checked when ../shared/partners/la-mps.md is present).
TEST_F(LaMps, GoldenFilesAreThePartnerDescriptionExamples) {
  const fs::path description = test::source_dir().parent_path() / "shared/partners/la-mps.md";
  if (!fs::exists(description)) {
    GTEST_SKIP() << "no " << description;
  }
  const std::string md = test::read_file(description);
  const std::regex block("```xml\\n([\\s\\S]*?)```");
  std::vector<std::string> examples;
  for (auto it = std::sregex_iterator(md.begin(), md.end(), block); it != std::sregex_iterator();
       ++it) {
    examples.push_back((*it)[1].str());
  }
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0], test::read_file(golden_dir() / "victim.xml"));
  EXPECT_EQ(examples[1], test::read_file(golden_dir() / "receipt.xml"));
}

TEST_F(LaMps, VictimExampleMapsTheDocumentedFields) {
  auto d = decode_ok(test::read_file(golden_dir() / "victim.xml"));
  const auto& m = d.message;
  EXPECT_EQ(std::string(m["id"].GetString()), message_uuid(la_sender, "HP-2569-0042"));
  EXPECT_STREQ(m["created"].GetString(), "2026-11-20T07:05:00Z");  // 14:05 at UTC+07:00
  EXPECT_STREQ(m["legalBasis"].GetString(), "consent");
  EXPECT_STREQ(m["handling"]["confidentiality"].GetString(), "confidential");
  EXPECT_STREQ(m["body"]["person"]["birthDate"].GetString(), "2008-08-15");  // BE 2551
  EXPECT_STREQ(m["body"]["person"]["names"][0]["script"].GetString(), "Laoo");
  EXPECT_STREQ(m["body"]["person"]["nationalities"][0].GetString(), "LA");
  EXPECT_STREQ(m["body"]["person"]["languages"][0].GetString(), "lao");
  EXPECT_STREQ(m["body"]["exploitation"][0].GetString(), "forced-marriage");
  EXPECT_STREQ(m["body"]["events"][0]["date"].GetString(), "2026-11-18");
  EXPECT_STREQ(m["unmapped"]["/LaoPoliceMessage/Person/Home/@village"].GetString(), "Ban Na Meo");
}

TEST_F(LaMps, WithTheGatewaysIdKeyTheIdIsKeyed) {
  mac_key key{};
  key[0] = 0x5a;
  auto keyed = context();
  keyed.message_id_key = &key;
  const auto d = la().decode(test::read_file(golden_dir() / "victim.xml"), keyed);
  ASSERT_EQ(d.status, 0) << errors_text(d.errors);
  EXPECT_EQ(std::string(d.message["id"].GetString()),
            derived_message_id(&key, la_sender, "HP-2569-0042"));
  EXPECT_NE(std::string(d.message["id"].GetString()), message_uuid(la_sender, "HP-2569-0042"));
}

// Lao names are given-first (KHAMLA PHOMMAVONG): family and given parts come from their
// attributes and the order from the person's nationality; a Vietnamese person's name keeps
// its family-first order both ways.
TEST_F(LaMps, ALaoNameIsGivenFirstWithItsFamilyAndGivenParts) {
  auto d = decode_ok(test::read_file(golden_dir() / "victim.xml"));
  const auto& names = d.message["body"]["person"]["names"];
  for (rapidjson::SizeType i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_STREQ(names[i]["order"].GetString(), "given-first");
    EXPECT_STREQ(names[i]["kind"].GetString(), "primary");
  }
  EXPECT_STREQ(names[0]["family"][0].GetString(), "ພົມມະວົງ");
  EXPECT_STREQ(names[0]["given"][0].GetString(), "ຄຳລາ");
  EXPECT_STREQ(names[1]["family"][0].GetString(), "PHOMMAVONG");
  EXPECT_STREQ(names[1]["given"][0].GetString(), "KHAMLA");

  // Encoded back: the same attributes, and as an alias the full name in Lao order.
  auto m = parse_json(test::read_file(golden_dir() / "victim.json"));
  m["body"]["person"]["names"][1]["kind"].SetString("birth");
  const std::string xml = encode_ok(m);
  EXPECT_NE(xml.find("<Name script=\"lao\" family=\"ພົມມະວົງ\" given=\"ຄຳລາ\"/>"), std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<Alias>KHAMLA PHOMMAVONG</Alias>"), std::string::npos) << xml;
  auto back = decode_ok(xml);
  EXPECT_STREQ(back.message["body"]["person"]["names"][0]["order"].GetString(), "given-first");
}

TEST_F(LaMps, AVietnameseNameKeepsItsFamilyFirstOrderBothWays) {
  auto d = decode_ok(test::read_file(golden_dir() / "verify-request.xml"));
  const auto& name = d.message["body"]["subject"]["names"][0];
  EXPECT_STREQ(name["family"][0].GetString(), "NGUYEN");
  EXPECT_STREQ(name["given"][0].GetString(), "VAN");
  EXPECT_STREQ(name["given"][1].GetString(), "AN");
  EXPECT_STREQ(name["order"].GetString(), "family-first");

  // A Vietnamese victim sent to Laos: the attributes as given, an alias in Vietnamese order,
  // and family-first again when Laos sends the person back.
  auto m = parse_json(test::read_file(golden_dir() / "victim.json"));
  auto& a = m.GetAllocator();
  auto& p = m["body"]["person"];
  p["nationalities"][0].SetString("VN", a);
  auto& names = p["names"];
  names.Erase(names.Begin());  // the Lao-script name
  json_value family(rapidjson::kArrayType);
  family.PushBack("NGUYEN", a);
  json_value given(rapidjson::kArrayType);
  given.PushBack("THI", a).PushBack("HOA", a);
  names[0]["family"] = family;
  names[0]["given"] = given;
  names[0]["order"].SetString("family-first");
  json_value birth(names[0], a);
  birth["kind"].SetString("birth");
  birth["given"][1].SetString("HONG");
  names.PushBack(birth, a);
  const std::string xml = encode_ok(m);
  EXPECT_NE(xml.find("<Name script=\"latin\" family=\"NGUYEN\" given=\"THI HOA\"/>"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<Alias>NGUYEN THI HONG</Alias>"), std::string::npos) << xml;
  auto back = decode_ok(xml);
  const auto& again = back.message["body"]["person"]["names"][0];
  EXPECT_STREQ(again["order"].GetString(), "family-first");
  EXPECT_STREQ(again["family"][0].GetString(), "NGUYEN");
}

TEST_F(LaMps, WithoutANationalityOnlyALaoScriptNameTellsTheOrder) {
  std::string xml = test::read_file(golden_dir() / "victim.xml");
  xml = std::regex_replace(xml, std::regex("    <Nationality>LAO</Nationality>\n"), "");
  auto lao = decode_ok(xml);
  EXPECT_STREQ(lao.message["body"]["person"]["names"][1]["order"].GetString(), "given-first");
  xml = std::regex_replace(xml, std::regex("    <Name script=\"lao\"[^\n]*\n"), "");
  auto latin = decode_ok(xml);
  EXPECT_FALSE(latin.message["body"]["person"]["names"][0].HasMember("order"))
      << pretty(latin.message);
}

// ---------------------------------------------------------------------------------------------
// canonical -> LA-MPS -> canonical for config/examples

class LaMpsExamples : public LaMps {
 protected:
  static rapidjson::Document example(const std::string& type) {
    return parse_json(test::read_file(test::source_dir() / "config/examples" / (type + ".json")));
  }

  /// Encodes the example, decodes the XML as if its sender had sent it and checks the result;
  /// from then on a round changes nothing. Returns the decoded message.
  static rapidjson::Document round_trip(const std::string& type) {
    const auto original = example(type);
    const std::string sender = original["sender"].GetString();
    const std::string xml = encode_ok(original);
    auto decoded = decode_ok(xml, sender);
    if (!decoded.message.IsObject()) {
      return {};  // refused: decode_ok said why; the caller finds no message
    }
    expect_canonical(decoded.message, sender);
    const std::string second = encode_ok(decoded.message);
    auto again = decode_ok(second, sender);
    EXPECT_TRUE(again.message == decoded.message) << pretty(again.message);
    EXPECT_EQ(encode_ok(again.message), second);
    const auto ref = decoded.message.FindMember("ref");
    EXPECT_NE(ref, decoded.message.MemberEnd()) << pretty(decoded.message);
    if (ref != decoded.message.MemberEnd()) {
      const auto original_ref = original.FindMember("ref");
      EXPECT_EQ(std::string(ref->value.GetString()),
                outbound_reference(
                    original_ref != original.MemberEnd() ? original_ref->value.GetString() : "",
                    original["id"].GetString()));
    }
    EXPECT_STREQ(decoded.message["handling"]["confidentiality"].GetString(),
                 original["handling"]["confidentiality"].GetString());
    rapidjson::Document out;
    out.CopyFrom(decoded.message, out.GetAllocator());
    return out;
  }
};

TEST_F(LaMpsExamples, VictimIdentificationKeepsWhatLaMpsCarries) {
  const auto original = example("victim.identification");
  const auto m = round_trip("victim.identification");
  const auto& b = m["body"];
  const auto& p = b["person"];
  // Latin primary name kept; the Khmer name and the alias travel as <Alias>.
  EXPECT_TRUE(p["names"][0] == original["body"]["person"]["names"][1]);
  EXPECT_STREQ(p["names"][1]["given"][0].GetString(), "គំរូ សុភា");
  EXPECT_STREQ(p["names"][1]["script"].GetString(), "Khmr");
  EXPECT_STREQ(p["names"][2]["given"][0].GetString(), "Phia");
  EXPECT_TRUE(p["sex"] == original["body"]["person"]["sex"]);
  EXPECT_TRUE(p["birthDate"] == original["body"]["person"]["birthDate"]);
  EXPECT_TRUE(p["birthDateApprox"] == original["body"]["person"]["birthDateApprox"]);
  EXPECT_TRUE(p["nationalities"] == original["body"]["person"]["nationalities"]);
  EXPECT_STREQ(p["documents"][0]["type"].GetString(), "other");  // border-pass has no LA code
  EXPECT_STREQ(p["documents"][0]["number"].GetString(), "EXAMPLE-0001");
  EXPECT_STREQ(p["homeRegion"]["code"].GetString(), "KH-16");
  EXPECT_EQ(p["languages"].Size(), 1u);  // jra has no ISO 639-1 code
  EXPECT_TRUE(b["status"] == original["body"]["status"]);
  EXPECT_TRUE(b["exploitation"] == original["body"]["exploitation"]);
  EXPECT_TRUE(b["needs"] == original["body"]["needs"]);
  EXPECT_TRUE(b["accompanyingMinors"] == original["body"]["accompanyingMinors"]);
  EXPECT_TRUE(b["repatriationRequested"] == original["body"]["repatriationRequested"]);
  EXPECT_TRUE(b["consent"]["given"].GetBool());
  EXPECT_STREQ(b["events"][0]["date"].GetString(), "2026-11-18");
  EXPECT_STREQ(b["events"][0]["place"]["region"]["code"].GetString(), "VN-30");
  EXPECT_TRUE(b["narrative"]["text"] == original["body"]["narrative"]["text"]);
  EXPECT_STREQ(b["narrative"]["lang"].GetString(), "vie");
}

TEST_F(LaMpsExamples, PersonWantedKeepsTheWarrant) {
  // The Vietnamese warrant comes back Vietnamese under the ref the gateway wrote: its authority
  // names the country (AForeignWarrantThatCameThroughTheGatewayIsNotMadeLao).
  const auto original = example("person.wanted");
  const auto m = round_trip("person.wanted");
  ASSERT_TRUE(m.IsObject());
  const auto& w = m["body"]["warrants"][0];
  const auto& ow = original["body"]["warrants"][0];
  EXPECT_TRUE(w["number"] == ow["number"]);
  EXPECT_TRUE(w["issuingCountry"] == ow["issuingCountry"]);
  EXPECT_TRUE(w["issuingAuthority"] == ow["issuingAuthority"]);
  EXPECT_TRUE(w["issued"] == ow["issued"]);
  EXPECT_TRUE(w["charges"][0]["text"] == ow["charges"][0]["text"]);
  EXPECT_TRUE(w["charges"][0]["statute"] == ow["charges"][0]["statute"]);
  EXPECT_STREQ(m["body"]["requestedAction"].GetString(), "locate-and-arrest");
  EXPECT_STREQ(m["body"]["lastSeen"]["region"]["code"].GetString(), "KH-16");
  EXPECT_STREQ(m["body"]["lastSeen"]["date"].GetString(), "2026-11-10");
  EXPECT_FALSE(m["body"].HasMember("warnings"));  // escape-risk is not "dangerous"
}

TEST_F(LaMpsExamples, HotlineTipKeepsSummaryUrgencyAndSubject) {
  const auto original = example("hotline.tip");
  const auto m = round_trip("hotline.tip");
  const auto& b = m["body"];
  EXPECT_STREQ(b["receivedAt"].GetString(), "2026-11-23T12:58:00Z");
  EXPECT_STREQ(b["channel"].GetString(), "phone");  // hotline-111 is written as line="province"
  EXPECT_TRUE(b["urgency"] == original["body"]["urgency"]);
  EXPECT_TRUE(b["summary"]["text"] == original["body"]["summary"]["text"]);
  EXPECT_TRUE(b["summary"]["translations"][0] == original["body"]["summary"]["translations"][0]);
  EXPECT_STREQ(b["subjects"][0]["role"].GetString(), "possible-victim");
  EXPECT_EQ(b["subjects"][0]["person"]["ageEstimate"]["max"].GetInt(), 15);  // the lower bound
  EXPECT_STREQ(b["places"][0]["region"]["code"].GetString(), "KH-16");
  EXPECT_STREQ(m["evaluation"]["sourceReliability"].GetString(), "X");
}

TEST_F(LaMpsExamples, VerificationRequestKeepsPurposeQuestionsDeadline) {
  const auto original = example("verification.request");
  const auto m = round_trip("verification.request");
  EXPECT_TRUE(m["body"]["purpose"] == original["body"]["purpose"]);
  EXPECT_TRUE(m["body"]["questions"] == original["body"]["questions"]);
  EXPECT_TRUE(m["body"]["deadline"] == original["body"]["deadline"]);
  EXPECT_TRUE(m["body"]["urgency"] == original["body"]["urgency"]);
}

TEST_F(LaMpsExamples, VerificationResultAndReceiptKeepTheirReplyLink) {
  const auto result = example("verification.result");
  const auto r = round_trip("verification.result");
  EXPECT_TRUE(r["inReplyTo"] == result["inReplyTo"]);
  EXPECT_TRUE(r["body"]["result"] == result["body"]["result"]);
  EXPECT_TRUE(r["body"]["notes"] == result["body"]["notes"]);
  const auto receipt = example("receipt");
  const auto c = round_trip("receipt");
  EXPECT_TRUE(c["body"]["inReplyTo"] == receipt["body"]["inReplyTo"]);
  EXPECT_TRUE(c["inReplyTo"] == receipt["inReplyTo"]);
  EXPECT_STREQ(c["body"]["status"].GetString(), "received");
}

TEST_F(LaMpsExamples, CaseStatusHasNoLaMpsType) {
  const auto result = la().encode(example("case.status"), context());
  EXPECT_EQ(result.status, 422);
  ASSERT_FALSE(result.errors.empty());
  EXPECT_EQ(result.errors[0].pointer, "/type");
  EXPECT_TRUE(result.bytes.empty());
}

// ---------------------------------------------------------------------------------------------
// Generated messages: canonical -> LA-MPS -> canonical gives the message back exactly.

class message_generator {
 public:
  message_generator(const pipeline::code_tables& tables, unsigned seed) : rng_(seed) {
    for (const auto* e : tables.find("region")->entries()) {
      regions_.push_back((*e)["code"].GetString());
    }
    for (const auto* e : tables.find("country")->entries()) {
      countries_.push_back((*e)["code"].GetString());
    }
    for (const auto* e : tables.find("language")->entries()) {
      if (e->HasMember("iso639_1")) {
        languages_.push_back((*e)["code"].GetString());
      }
    }
  }

  /// Message number `i` of type `i % 6`, in the form LA-MPS carries exactly.
  rapidjson::Document make(int i, const std::string& sender) {
    rapidjson::Document m(rapidjson::kObjectType);
    a_ = &m.GetAllocator();
    static const char* types[] = {"victim.identification", "person.wanted",       "hotline.tip",
                                  "verification.request",  "verification.result", "receipt"};
    static const char* levels[] = {"restricted", "confidential", "secret"};
    const std::string type = types[i % 6];
    const std::string ref = "GEN-" + std::to_string(i) + (i % 7 == 0 ? "/ລາວ" : "");
    const std::string created = i % 50 == 3 ? "2024-02-28T17:30:00Z" : instant();  // BE 29/02
    // The message's dates lie around its own, as in real messages: the decoder refuses dates
    // too far from the message's (a year written in the wrong era).
    created_at_ = *parse_rfc3339(created);
    created_year_ = std::stoi(created.substr(0, 4));
    m.AddMember("mx", "1", *a_);
    m.AddMember("id", s(message_uuid(sender, ref)), *a_);
    m.AddMember("type", s(type), *a_);
    m.AddMember("created", s(created), *a_);
    m.AddMember("sender", s(sender), *a_);
    m.AddMember("ref", s(ref), *a_);
    json_value body(rapidjson::kObjectType);
    std::string legal_basis = "crime-prevention";
    if (type == "victim.identification") {
      victim(body, i, legal_basis);
    } else if (type == "person.wanted") {
      wanted(body);
    } else if (type == "hotline.tip") {
      hotline(body, i);
      json_value evaluation(rapidjson::kObjectType);
      evaluation.AddMember("sourceReliability", "X", *a_);
      evaluation.AddMember("informationAccuracy", 4, *a_);
      m.AddMember("evaluation", evaluation, *a_);
    } else if (type == "verification.request") {
      request(body, i);
    } else if (type == "verification.result") {
      m.AddMember("inReplyTo", s(uuid()), *a_);
      result(body, i);
    } else {
      const std::string reply = uuid();
      m.AddMember("inReplyTo", s(reply), *a_);
      body.AddMember("inReplyTo", s(reply), *a_);
      const bool rejected = i % 4 == 1;
      body.AddMember("status", rejected ? "rejected" : "received", *a_);
      body.AddMember("received", s(created), *a_);
      if (rejected) {
        json_value error(rapidjson::kObjectType);
        error.AddMember("reason", s(pick(texts())), *a_);
        json_value errors(rapidjson::kArrayType);
        errors.PushBack(error, *a_);
        body.AddMember("errors", errors, *a_);
      }
    }
    m.AddMember("legalBasis", s(legal_basis), *a_);
    json_value handling(rapidjson::kObjectType);
    handling.AddMember("confidentiality", s(levels[(i / 6) % 3]), *a_);
    json_value codes(rapidjson::kArrayType);
    codes.PushBack("H0", *a_);
    handling.AddMember("codes", codes, *a_);
    m.AddMember("handling", handling, *a_);
    m.AddMember("body", body, *a_);
    return m;
  }

 private:
  using strings = std::vector<std::string>;

  json_value s(const std::string& text) { return json_value(text.c_str(), *a_); }
  bool chance(int percent) { return static_cast<int>(rng_() % 100) < percent; }
  const std::string& pick(const strings& list) { return list[rng_() % list.size()]; }

  static const strings& texts() {
    static const strings t = {
        "Plain text.",
        "Markup <b>bold</b> & \"quotes\" 'apostrophes' ]]> end",
        "Two lines\r\nwith CRLF\tand a tab",
        "ຜູ້ເຄາະຮ້າຍຖືກພົບຢູ່ບ້ານນາແມວ.",
        "Nạn nhân được phát hiện tại Mường Lát, Thanh Hóa.",
        "Emoji outside the BMP: \xF0\x9F\x98\x80 and </Narrative><Injected/>",
    };
    return t;
  }

  std::string uuid() {
    static const char* hex = "0123456789abcdef";
    std::string u;
    for (int k = 0; k < 32; ++k) {
      if (k == 8 || k == 12 || k == 16 || k == 20) {
        u += '-';
      }
      u += hex[rng_() % 16];
    }
    return u;
  }

  std::string instant() {
    using namespace std::chrono;
    return rfc3339(sys_days{year{2024} / 1 / 1} + days(rng_() % 1500) + minutes(rng_() % 1440));
  }

  /// A minute in the month before the message was created.
  std::string before_created() {
    using namespace std::chrono;
    const auto t = time_point_cast<minutes>(created_at_);
    return rfc3339(t - days(rng_() % 30) - minutes(rng_() % 1440));
  }

  static std::string rfc3339(std::chrono::system_clock::time_point t) {
    const std::time_t c = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&c, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:00Z", &tm);
    return b;
  }

  /// A partial date in the years [from, from + span): year only, year-month, a full date, or a
  /// leap day (BE 29/02/25xx) of a leap year in that range (a date of birth stays before
  /// `created`, which the canonical check requires).
  std::string partial(int from, int span) {
    static const int leap_years[] = {1952, 1956, 1960, 1964, 1968, 1972, 1976, 1980, 1984, 1988,
                                     1992, 1996, 2000, 2004, 2008, 2012, 2016, 2020, 2024, 2028};
    std::vector<int> leap_in_range;
    for (const int leap : leap_years) {
      if (leap >= from && leap < from + span) {
        leap_in_range.push_back(leap);
      }
    }
    char b[16];
    const int form = static_cast<int>(rng_() % 4);
    const int y = from + static_cast<int>(rng_() % span);
    if (form == 3 && !leap_in_range.empty()) {
      std::snprintf(b, sizeof b, "%04d-02-29", leap_in_range[rng_() % leap_in_range.size()]);
    } else if (form == 0 || form == 3) {
      std::snprintf(b, sizeof b, "%04d", y);
    } else if (form == 1) {
      std::snprintf(b, sizeof b, "%04d-%02d", y, 1 + static_cast<int>(rng_() % 12));
    } else {
      std::snprintf(b, sizeof b, "%04d-%02d-%02d", y, 1 + static_cast<int>(rng_() % 12),
                    1 + static_cast<int>(rng_() % 28));
    }
    return b;
  }

  json_value parts(const std::string& text) {
    json_value out(rapidjson::kArrayType);
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t end = text.find(' ', start);
      end = end == std::string::npos ? text.size() : end;
      out.PushBack(s(text.substr(start, end - start)), *a_);
      start = end + 1;
    }
    return out;
  }

  json_value name(const std::string& family, const std::string& given, const char* script) {
    json_value n(rapidjson::kObjectType);
    if (!family.empty()) {
      n.AddMember("family", parts(family), *a_);
    }
    if (!given.empty()) {
      n.AddMember("given", parts(given), *a_);
    }
    n.AddMember("script", json_value(script, *a_), *a_);
    n.AddMember("kind", "primary", *a_);
    return n;
  }

  /// The order LA-MPS names come back with: a Lao or Thai national's names are given-first; a
  /// Vietnamese, Khmer, Chinese, Korean or Japanese national's family-first; with no
  /// nationality, given-first when there is a Lao-script name; else no order.
  void set_name_order(json_value& p) {
    const auto holds = [&](const char* code) {
      const auto list = p.FindMember("nationalities");
      if (list == p.MemberEnd()) {
        return false;
      }
      for (const auto& c : list->value.GetArray()) {
        if (std::string(c.GetString()) == code) {
          return true;
        }
      }
      return false;
    };
    bool lao_script = false;
    for (const auto& n : p["names"].GetArray()) {
      lao_script = lao_script || (std::string(n["kind"].GetString()) == "primary" &&
                                  std::string(n["script"].GetString()) == "Laoo");
    }
    const char* order = nullptr;
    if (holds("LA") || holds("TH")) {
      order = "given-first";
    } else if (holds("VN") || holds("KH") || holds("CN") || holds("TW") || holds("HK") ||
               holds("MO") || holds("KR") || holds("JP")) {
      order = "family-first";
    } else if (!p.HasMember("nationalities") && lao_script) {
      order = "given-first";
    }
    if (order == nullptr) {
      return;
    }
    for (auto& n : p["names"].GetArray()) {
      if (std::string(n["kind"].GetString()) == "primary") {
        n.AddMember("order", json_value(order, *a_), *a_);
      }
    }
  }

  void unique_codes(json_value& target, const char* member, const strings& from, int max) {
    json_value list(rapidjson::kArrayType);
    strings used;
    const int n = static_cast<int>(rng_() % (max + 1));
    for (int k = 0; k < n; ++k) {
      const std::string& c = pick(from);
      if (std::find(used.begin(), used.end(), c) == used.end()) {
        used.push_back(c);
        list.PushBack(s(c), *a_);
      }
    }
    if (!list.Empty()) {
      target.AddMember(json_value(member, *a_), list, *a_);
    }
  }

  json_value person() {
    static const strings lao_family = {"ພົມມະວົງ", "ສີສຸວັນ", "ແກ້ວມະນີ", "ວົງສາ", "ໄຊຍະວົງ"};
    static const strings lao_given = {"ຄຳລາ", "ບຸນມີ", "ສົມພອນ", "ນ້ອຍ", "ບົວພັນ", "ແສງ ດາວ"};
    static const strings latin_family = {"PHOMMAVONG", "SISOUVANH", "KEOMANY",
                                         "VONGSA",     "NGUYEN",    "A<B&C\"D"};
    static const strings latin_given = {"KHAMLA",  "BOUNMY", "SOMPHONE",
                                        "THI HOA", "VAN AN", "X\r\nY"};
    static const strings aliases = {"Noy", "Mr Boun", "ນ້ອຍ", "ທ້າວບຸນ", "Bee & Co"};
    static const strings sexes = {"M", "F", "U"};
    static const strings document_types = {"passport", "national-id", "birth-certificate",
                                           "family-book", "other"};
    json_value p(rapidjson::kObjectType);
    json_value names(rapidjson::kArrayType);
    const bool lao = chance(70);
    const bool latin = !lao || chance(80);
    if (lao) {
      names.PushBack(name(chance(90) ? pick(lao_family) : "", pick(lao_given), "Laoo"), *a_);
    }
    if (latin) {
      names.PushBack(name(pick(latin_family), chance(90) ? pick(latin_given) : "", "Latn"), *a_);
    }
    for (int k = static_cast<int>(rng_() % 3); k > 0; --k) {
      const std::string& alias = pick(aliases);
      json_value n(rapidjson::kObjectType);
      json_value given(rapidjson::kArrayType);
      given.PushBack(s(alias), *a_);
      n.AddMember("given", given, *a_);
      n.AddMember("script", alias[0] < 0 ? "Laoo" : "Latn", *a_);
      n.AddMember("kind", "alias", *a_);
      names.PushBack(n, *a_);
    }
    p.AddMember("names", names, *a_);
    if (chance(80)) {
      p.AddMember("sex", s(pick(sexes)), *a_);
    }
    if (chance(60)) {
      p.AddMember("birthDate", s(partial(1950, 70)), *a_);
      if (chance(50)) {
        p.AddMember("birthDateApprox", chance(50), *a_);
      }
    } else if (chance(50)) {
      json_value age(rapidjson::kObjectType);
      const int n = static_cast<int>(rng_() % 80);
      age.AddMember("min", n, *a_);
      age.AddMember("max", n, *a_);
      p.AddMember("ageEstimate", age, *a_);
    }
    // Mostly Lao and Vietnamese persons, so that both name orders occur often.
    static const strings neighbours = {"LA", "LA", "VN", "KH", "TH"};
    if (chance(50)) {
      unique_codes(p, "nationalities", neighbours, 2);
    } else {
      unique_codes(p, "nationalities", countries_, 2);
    }
    set_name_order(p);
    if (chance(60)) {
      json_value documents(rapidjson::kArrayType);
      for (int k = 1 + static_cast<int>(rng_() % 2); k > 0; --k) {
        json_value d(rapidjson::kObjectType);
        d.AddMember("type", s(pick(document_types)), *a_);
        if (chance(80)) {
          d.AddMember("number", s("N-" + std::to_string(rng_() % 1000000)), *a_);
        }
        if (chance(70)) {
          d.AddMember("issuingCountry", s(pick(countries_)), *a_);
        }
        documents.PushBack(d, *a_);
      }
      p.AddMember("documents", documents, *a_);
    }
    if (chance(50)) {
      json_value home(rapidjson::kObjectType);
      home.AddMember("code", s(pick(regions_)), *a_);
      p.AddMember("homeRegion", home, *a_);
    }
    unique_codes(p, "languages", languages_, 2);
    return p;
  }

  json_value text(bool with_lang) {
    static const strings langs = {"lao", "eng", "vie"};
    json_value t(rapidjson::kObjectType);
    t.AddMember("text", s(pick(texts())), *a_);
    if (with_lang && chance(75)) {
      t.AddMember("lang", s(pick(langs)), *a_);
    }
    return t;
  }

  void victim(json_value& body, int i, std::string& legal_basis) {
    static const strings statuses = {"possible", "identified", "rescued", "returned"};
    static const strings exploitation = {
        "sexual",        "forced-labour",  "forced-marriage", "forced-criminality",
        "organ-removal", "forced-begging", "forced-adoption", "surrogacy",
        "other"};
    static const strings needs = {"medical", "shelter",     "psychological",
                                  "legal",   "interpreter", "travel-document"};
    body.AddMember("person", person(), *a_);
    body.AddMember("status", s(statuses[(i / 6) % 4]), *a_);
    json_value kinds(rapidjson::kArrayType);
    kinds.PushBack(s(exploitation[(i / 6) % 9]), *a_);
    body.AddMember("exploitation", kinds, *a_);
    if (chance(60)) {
      json_value event(rapidjson::kObjectType);
      event.AddMember("type", "identification", *a_);
      if (chance(70)) {
        event.AddMember("date", s(partial(created_year_ - 7, 8)), *a_);
      }
      json_value place(rapidjson::kObjectType);
      if (chance(70)) {
        json_value region(rapidjson::kObjectType);
        region.AddMember("code", s(pick(regions_)), *a_);
        place.AddMember("region", region, *a_);
      }
      if (chance(60)) {
        place.AddMember("detail", s(pick(texts())), *a_);
      }
      if (place.MemberCount() > 0) {
        event.AddMember("place", place, *a_);
      }
      json_value events(rapidjson::kArrayType);
      events.PushBack(event, *a_);
      body.AddMember("events", events, *a_);
    }
    if (chance(50)) {
      body.AddMember("accompanyingMinors", static_cast<int>(rng_() % 5), *a_);
    }
    unique_codes(body, "needs", needs, 4);
    if (chance(50)) {
      body.AddMember("repatriationRequested", chance(50), *a_);
    }
    const int consent = static_cast<int>(rng_() % 3);
    if (consent > 0) {
      json_value c(rapidjson::kObjectType);
      c.AddMember("given", consent == 1, *a_);
      if (consent == 1) {
        json_value scope(rapidjson::kArrayType);
        scope.PushBack("victim-protection", *a_);
        scope.PushBack("repatriation", *a_);
        c.AddMember("scope", scope, *a_);
        legal_basis = "consent";
      }
      body.AddMember("consent", c, *a_);
    }
    if (chance(60)) {
      body.AddMember("narrative", text(true), *a_);
    }
  }

  void wanted(json_value& body) {
    body.AddMember("person", person(), *a_);
    json_value w(rapidjson::kObjectType);
    w.AddMember("number", s("W/" + std::to_string(rng_() % 10000)), *a_);
    // Warrants of Laos and of its neighbours: each comes back with its own country.
    const std::string country = pick({"LA", "VN", "KH", "TH"});
    w.AddMember("issuingCountry", s(country), *a_);
    w.AddMember("issuingAuthority", s(chance(50) ? "Houaphanh People's Court" : "ສານປະຊາຊົນ"), *a_);
    w.AddMember("issued", s(partial(created_year_ - 11, 12)), *a_);
    if (chance(40)) {
      w.AddMember("expires", s(partial(created_year_ + 1, 5)), *a_);
    }
    json_value charges(rapidjson::kArrayType);
    for (int k = 1 + static_cast<int>(rng_() % 3); k > 0; --k) {
      json_value c(rapidjson::kObjectType);
      c.AddMember("text", s(pick(texts())), *a_);
      if (chance(50)) {
        json_value statute(rapidjson::kObjectType);
        statute.AddMember("jurisdiction", s(country), *a_);
        statute.AddMember("code", s("LA-ATIP-2015-ART" + std::to_string(80 + rng_() % 20)), *a_);
        c.AddMember("statute", statute, *a_);
      }
      charges.PushBack(c, *a_);
    }
    w.AddMember("charges", charges, *a_);
    json_value warrants(rapidjson::kArrayType);
    warrants.PushBack(w, *a_);
    body.AddMember("warrants", warrants, *a_);
    body.AddMember("requestedAction", "locate-and-arrest", *a_);
    if (chance(50)) {
      json_value warnings(rapidjson::kArrayType);
      warnings.PushBack("violent", *a_);
      body.AddMember("warnings", warnings, *a_);
    }
    if (chance(60)) {
      json_value seen(rapidjson::kObjectType);
      const bool with_region = chance(70);
      if (with_region) {
        json_value region(rapidjson::kObjectType);
        region.AddMember("code", s(pick(regions_)), *a_);
        seen.AddMember("region", region, *a_);
      }
      if (!with_region || chance(50)) {
        seen.AddMember("detail", s(pick(texts())), *a_);
      }
      if (chance(60)) {
        seen.AddMember("date", s(partial(created_year_ - 2, 3)), *a_);
      }
      body.AddMember("lastSeen", seen, *a_);
    }
  }

  void hotline(json_value& body, int i) {
    static const strings channels = {"hotline-1300", "phone", "web", "walk-in"};
    static const strings urgency = {"immediate", "high", "normal"};
    // A witness comes back as a possible victim (LA-MPS has no witness), tested on its own.
    static const strings roles = {"possible-victim", "suspected-trafficker"};
    body.AddMember("receivedAt", s(before_created()), *a_);
    body.AddMember("channel", s(channels[(i / 6) % 4]), *a_);
    if (chance(40)) {
      body.AddMember("reporterType", "anonymous", *a_);
    }
    body.AddMember("urgency", s(urgency[(i / 6) % 3]), *a_);
    if (chance(60)) {
      json_value subject(rapidjson::kObjectType);
      subject.AddMember("role", s(roles[(i / 6) % 2]), *a_);
      subject.AddMember("person", person(), *a_);
      json_value subjects(rapidjson::kArrayType);
      subjects.PushBack(subject, *a_);
      body.AddMember("subjects", subjects, *a_);
    }
    if (chance(50)) {
      json_value region(rapidjson::kObjectType);
      region.AddMember("code", s(pick(regions_)), *a_);
      json_value place(rapidjson::kObjectType);
      place.AddMember("region", region, *a_);
      json_value places(rapidjson::kArrayType);
      places.PushBack(place, *a_);
      body.AddMember("places", places, *a_);
    }
    json_value summary = text(false);
    if (chance(50)) {
      json_value translations(rapidjson::kArrayType);
      translations.PushBack(text(true), *a_);
      summary.AddMember("translations", translations, *a_);
    }
    body.AddMember("summary", summary, *a_);
  }

  void request(json_value& body, int i) {
    static const strings purposes = {"nationality", "identity", "family-tracing",
                                     "document-authenticity", "criminal-record"};
    static const strings urgency = {"immediate", "high", "normal"};
    body.AddMember("purpose", s(purposes[(i / 6) % 5]), *a_);
    body.AddMember("subject", person(), *a_);
    json_value questions(rapidjson::kArrayType);
    for (int k = static_cast<int>(rng_() % 3); k > 0; --k) {
      questions.PushBack(s(pick(texts())), *a_);
    }
    if (!questions.Empty()) {
      body.AddMember("questions", questions, *a_);
    }
    if (chance(50)) {
      char b[16];
      std::snprintf(b, sizeof b, "%04d-%02d-%02d", created_year_ + static_cast<int>(rng_() % 2),
                    1 + static_cast<int>(rng_() % 12), 1 + static_cast<int>(rng_() % 28));
      body.AddMember("deadline", s(b), *a_);
    }
    if (chance(50)) {
      body.AddMember("urgency", s(pick(urgency)), *a_);
    }
  }

  void result(json_value& body, int i) {
    static const strings results = {"confirmed", "not-confirmed", "partial", "no-record",
                                    "refused"};
    body.AddMember("result", s(results[(i / 6) % 5]), *a_);
    if (chance(60)) {
      body.AddMember("matched", person(), *a_);
    }
    if (chance(60)) {
      body.AddMember("notes", text(true), *a_);
    }
  }

  std::mt19937 rng_;
  std::chrono::system_clock::time_point created_at_;
  int created_year_ = 2024;
  rapidjson::Document::AllocatorType* a_ = nullptr;
  strings regions_;
  strings countries_;
  strings languages_;
};

TEST_F(LaMps, TwoHundredFortyGeneratedMessagesSurviveCanonicalToLaMpsToCanonical) {
  message_generator generator(checker_->tables(), 20261120u);
  const std::vector<std::string> senders = {"la-houaphanh", "la-attapeu", "vn-thanhhoa"};
  int checked = 0;
  for (int i = 0; i < 240; ++i) {
    const std::string& sender = senders[i % senders.size()];
    const auto original = generator.make(i, sender);
    SCOPED_TRACE("message " + std::to_string(i));
    expect_canonical(original, sender);
    const auto encoded = la().encode(original, context(sender));
    ASSERT_EQ(encoded.status, 0) << errors_text(encoded.errors) << pretty(original);
    const auto expected = renamed_by_gateway(original, sender);
    const std::string& bytes = encoded.bytes;
    const auto decoded = la().decode(bytes, context(sender));
    ASSERT_EQ(decoded.status, 0) << errors_text(decoded.errors) << bytes;
    EXPECT_TRUE(decoded.message == expected) << "original:\n"
                                             << pretty(original) << "xml:\n"
                                             << bytes << "decoded:\n"
                                             << pretty(decoded.message);
    expect_canonical(decoded.message, sender);
    ++checked;
  }
  EXPECT_EQ(checked, 240);
}

// ---------------------------------------------------------------------------------------------
// Hardening: every refusal is a 400 (not this format) and nothing of the input leaks.

TEST_F(LaMps, RefusesADoctype) {
  expect_refused(R"(<?xml version="1.0"?><!DOCTYPE LaoPoliceMessage><LaoPoliceMessage/>)", 400, "",
                 "DOCTYPE");
}

TEST_F(LaMps, RefusesBillionLaughs) {
  const std::string bomb = R"(<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>)" + hotline_head + "&lol9;" +
                           hotline_tail;
  const auto started = std::chrono::steady_clock::now();
  expect_refused(bomb, 400, "", "DOCTYPE");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
}

TEST_F(LaMps, RefusesExternalEntitiesAndLeaksNothingOfTheFile) {
  const std::string secret_marker = "root:";
  const std::vector<std::string> attacks = {
      // classic XXE: an external entity in the internal subset
      R"(<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>)" +
          hotline_head + "&xxe;" + hotline_tail,
      // an external DTD
      R"(<?xml version="1.0"?><!DOCTYPE LaoPoliceMessage SYSTEM "file:///etc/passwd">)"
      R"(<LaoPoliceMessage/>)",
      // a parameter entity
      R"(<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>)",
      // an entity reference with no declaration at all
      R"(<?xml version="1.0"?>)" + hotline_head + "&xxe;" + hotline_tail,
      // XInclude is not processed: the element is simply not LA-MPS
      R"(<?xml version="1.0"?>)" + std::string(hotline_head).replace(17, 0, xinclude_ns) +
          R"(<xi:include href="file:///etc/passwd" parse="text"/>)" + hotline_tail,
  };
  for (std::size_t i = 0; i < attacks.size(); ++i) {
    SCOPED_TRACE("attack " + std::to_string(i));
    const auto result = la().decode(attacks[i], context());
    EXPECT_NE(result.status, 0);
    EXPECT_TRUE(i == 4 ? result.status == 422 : result.status == 400);
    EXPECT_TRUE(result.message.IsNull());
    const std::string everything =
        errors_text(result.errors) + la().encode_error(result.status, "refused", result.errors);
    EXPECT_EQ(everything.find(secret_marker), std::string::npos) << everything;
    EXPECT_EQ(everything.find("/bin/"), std::string::npos) << everything;
  }
}

TEST_F(LaMps, RefusesInvalidUtf8) {
  const std::string good = test::read_file(golden_dir() / "receipt.xml");
  for (const std::string bad :
       {"\x80", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82"}) {
    std::string xml = good;
    xml.insert(xml.find("</LaoPoliceMessage>"), "<!-- " + bad + " -->");
    expect_refused(xml, 400, "", "not valid UTF-8");
  }
}

TEST_F(LaMps, RefusesOtherDeclaredEncodings) {
  expect_refused(R"(<?xml version="1.0" encoding="ISO-8859-1"?><LaoPoliceMessage/>)", 400, "",
                 "not UTF-8");
}

TEST_F(LaMps, RefusesDeepNesting) {
  std::string deep = "<LaoPoliceMessage>";
  for (int i = 0; i < 40; ++i) {
    deep += "<a>";
  }
  for (int i = 0; i < 40; ++i) {
    deep += "</a>";
  }
  deep += "</LaoPoliceMessage>";
  expect_refused(deep, 400, "", "nested deeper than 32");
}

TEST_F(LaMps, RefusesOversizedAndMalformedInput) {
  expect_refused(std::string(1024 * 1024 + 1, ' '), 400, "", "larger than");
  expect_refused("", 400, "", "empty");
  expect_refused("{\"mx\":\"1\"}", 400, "", "not well-formed");
  expect_refused("<LaoPoliceMessage><Person></LaoPoliceMessage>", 400, "", "not well-formed");
}

TEST_F(LaMps, RefusesTooManyElements) {
  std::string wide = "<LaoPoliceMessage>";
  for (int i = 0; i < 6000; ++i) {
    wide += "<a/>";
  }
  wide += "</LaoPoliceMessage>";
  expect_refused(wide, 400, "", "more than 5000 elements");
}

TEST_F(LaMps, RefusesAnElementWithTooManyAttributes) {
  // libxml2 compares each attribute with every earlier one of its element: 100,000 of them
  // (1 MiB) held a thread for minutes. They are counted before the parser starts.
  std::string attributes;
  for (int i = 0; i < 100'000; ++i) {
    attributes += " x" + std::to_string(i) + "=\"\"";
  }
  expect_refused("<LaoPoliceMessage" + attributes.substr(0, 65 * 5 + 200) + "/>", 400, "",
                 "more than 64 attributes");
  expect_refused("<LaoPoliceMessage" + attributes + "/>", 400, "", "more than 64 attributes");
  // Quoted '=' and '>', comments, CDATA and processing instructions are not attributes.
  const std::string quoted = "<?pi a=1 b=2?><!-- c=3 --><LaoPoliceMessage note=\"" +
                             std::string(100, '=') + ">\"><![CDATA[" + std::string(100, '=') +
                             "]]></LaoPoliceMessage>";
  const auto result = la().decode(quoted, context());
  for (const auto& e : result.errors) {
    EXPECT_EQ(e.reason.find("attributes"), std::string::npos) << e.reason;
  }
}

TEST_F(LaMps, ListsAtMostAHundredErrors) {
  // Unknown attributes, at most 64 on each element (the parser's limit), over many elements.
  std::string needs;
  for (int element = 0; element < 10; ++element) {
    needs += "<Need";
    for (int i = 0; i < 50; ++i) {
      needs += " x" + std::to_string(i) + "=\"1\"";
    }
    needs += ">medical</Need>";
  }
  const auto result = la().decode(victim_xml(plain_person, needs), context());
  EXPECT_EQ(result.status, 422);
  EXPECT_EQ(result.errors.size(), 101u);
  EXPECT_EQ(result.errors.back().reason, "more errors were found and are not listed");
}

TEST_F(LaMps, RefusesAWrongRootElement) {
  expect_refused(R"(<KhmerPoliceMessage version="1.3"/>)", 400, "/KhmerPoliceMessage",
                 "root element");
  expect_refused(R"(<LaoPoliceMessage xmlns="urn:other" version="1.3"/>)", 400,
                 "/{urn:other}LaoPoliceMessage", "root element");
}

// ---------------------------------------------------------------------------------------------
// Mapping errors: 422 with the location in the partner's bytes.

TEST_F(LaMps, RefusesAWrongVersion) {
  std::string xml = test::read_file(golden_dir() / "receipt.xml");
  xml.replace(xml.find("version=\"1.3\""), 13, "version=\"1.2\"");
  expect_refused(xml, 422, "/LaoPoliceMessage/@version", "'1.2'");
}

TEST_F(LaMps, RefusesAnUnknownCodeNamingPlaceValueAndTable) {
  const std::string xml = victim_xml(
      plain_person, "<Exploitation>sexual</Exploitation><Exploitation>trafficking</Exploitation>");
  expect_refused(xml, 422, "/LaoPoliceMessage/Victim/Exploitation[2]",
                 "'trafficking' is not in table 'exploitation'");
  expect_refused(victim_xml(plain_person + "<Nationality>XYZ</Nationality>", ""), 422,
                 "/LaoPoliceMessage/Person/Nationality[1]", "'XYZ' is not in table 'country'");
  expect_refused(victim_xml(plain_person + "<Gender>ຍິງຊາຍ</Gender>", ""), 422,
                 "/LaoPoliceMessage/Person/Gender", "is not in table 'sex'");
  expect_refused(victim_xml(plain_person + R"(<Home province="LA-ZZ"/>)", ""), 422,
                 "/LaoPoliceMessage/Person/Home/@province", "'LA-ZZ' is not in table 'region'");
}

TEST_F(LaMps, CarriesUnknownCodesInUnmappedWhenThePartnerAllowsIt) {
  const std::string xml = victim_xml(
      plain_person + R"(<Language>xx</Language><Document type="driving-licence">D-1</Document>)",
      "<Exploitation>sexual</Exploitation><Exploitation>trafficking</Exploitation>");
  auto d = decode_ok(xml, la_sender, true);
  const auto& u = d.message["unmapped"];
  EXPECT_STREQ(u["/LaoPoliceMessage/Victim/Exploitation[2]"].GetString(), "trafficking");
  EXPECT_STREQ(u["/LaoPoliceMessage/Person/Language[1]"].GetString(), "xx");
  EXPECT_STREQ(u["/LaoPoliceMessage/Person/Document[1]/@type"].GetString(), "driving-licence");
  EXPECT_STREQ(d.message["body"]["person"]["documents"][0]["type"].GetString(), "other");
  EXPECT_EQ(d.message["body"]["exploitation"].Size(), 1u);
  expect_canonical(d.message, la_sender);
  // A required code cannot be left out, so it is refused even then.
  std::string status = victim_xml(plain_person, "");
  status.replace(status.find("status=\"identified\""), 19, "status=\"trafficked\"");
  expect_refused(status, 422, "/LaoPoliceMessage/Victim/@status", "'trafficked'", true);
}

/// Every error reason of decoding `xml`, one per line, for checking what they must not hold.
std::string all_reasons(const decode_result& result) {
  std::string out;
  for (const auto& e : result.errors) {
    out += e.reason + "\n";
  }
  return out;
}

TEST_F(LaMps, RefusesDatesThatDoNotExist) {
  expect_refused(victim_xml(plain_person + "<BirthDate>31/02/2569</BirthDate>", ""), 422,
                 "/LaoPoliceMessage/Person/BirthDate", "is not a real date");
  expect_refused(victim_xml(plain_person + "<BirthDate>29/02/2569</BirthDate>", ""), 422,
                 "/LaoPoliceMessage/Person/BirthDate", "is not a real date");  // 2026: no leap
  expect_refused(victim_xml(plain_person, R"(<Found date="31/02/2569"/>)"), 422,
                 "/LaoPoliceMessage/Victim/Found/@date", "is not a real date");
  std::string bad_time = test::read_file(golden_dir() / "receipt.xml");
  bad_time.replace(bad_time.find("14:06"), 5, "24:30");
  expect_refused(bad_time, 422, "/LaoPoliceMessage/@time", "is not a real time of day");
  // the BE leap day is fine
  auto d = decode_ok(victim_xml(plain_person + "<BirthDate>29/02/2567</BirthDate>", ""));
  EXPECT_STREQ(d.message["body"]["person"]["birthDate"].GetString(), "2024-02-29");
}

// A date of birth is personal data, and a time can be: the reason names the place and what is
// wrong, never the value.
TEST_F(LaMps, DateAndTimeErrorsDoNotQuoteTheValue) {
  const std::string receipt = test::read_file(golden_dir() / "receipt.xml");
  // `xml` with the first `from` replaced by `to`.
  const auto with = [](std::string xml, const std::string& from, const std::string& to) {
    xml.replace(xml.find(from), from.size(), to);
    return xml;
  };
  const std::string tip = hotline_head + "text" + hotline_tail;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {victim_xml(plain_person + "<BirthDate>31/02/2569</BirthDate>", ""), "31/02/2569"},
      {victim_xml(plain_person + "<BirthDate>15-08-2551</BirthDate>", ""), "15-08-2551"},
      {victim_xml(plain_person + "<BirthDate>15/08/2008</BirthDate>", ""), "2008"},
      {victim_xml(plain_person + R"(<BirthDate calendar="CE">15/08/2551</BirthDate>)", ""), "2551"},
      {victim_xml(plain_person + "<Age>1x7</Age>", ""), "1x7"},
      {victim_xml(plain_person + "<Age>131</Age>", ""), "131"},
      {with(receipt, "14:06", "24:30"), "24:30"},
      {with(receipt, "14:06", "14:6"), "14:6"},
      {with(receipt, "20/11/2569", "00/11/2569"), "00/11/2569"},
      {with(tip, "20/11/2569 14:00", "20/11/2569 25:61"), "25:61"},
  };
  for (const auto& [xml, value] : cases) {
    SCOPED_TRACE(value);
    const auto result = la().decode(xml, context());
    ASSERT_EQ(result.status, 422) << xml;
    EXPECT_EQ(all_reasons(result).find(value), std::string::npos) << all_reasons(result);
  }
}

// ---------------------------------------------------------------------------------------------
// Calendars: Buddhist Era is the format's default; calendar="CE" on the root makes Common Era the
// default of every date in the document. A year read in the wrong era is 543 years off.

TEST_F(LaMps, DateElementsWithoutACalendarTakeTheRootCalendar) {
  std::string xml = victim_xml(plain_person + "<BirthDate>15/08/2008</BirthDate>",
                               R"(<Found date="18/11/2026"/>)", R"( calendar="CE")");
  xml.replace(xml.find(R"(date="20/11/2569")"), 17, R"(date="20/11/2026")");
  auto d = decode_ok(xml);
  ASSERT_TRUE(d.message.IsObject());
  EXPECT_STREQ(d.message["created"].GetString(), "2026-11-20T07:05:00Z");
  EXPECT_STREQ(d.message["body"]["person"]["birthDate"].GetString(), "2008-08-15");
  EXPECT_STREQ(d.message["body"]["events"][0]["date"].GetString(), "2026-11-18");
  expect_canonical(d.message, la_sender);

  // An element's own calendar wins over the root's.
  std::string own = xml;
  own.replace(own.find("<BirthDate>15/08/2008"), 21, R"(<BirthDate calendar="BE">15/08/2551)");
  auto o = decode_ok(own);
  ASSERT_TRUE(o.message.IsObject());
  EXPECT_STREQ(o.message["body"]["person"]["birthDate"].GetString(), "2008-08-15");

  // Without any calendar, Buddhist Era.
  auto be = decode_ok(victim_xml(plain_person + "<BirthDate>15/08/2551</BirthDate>",
                                 R"(<Found date="18/11/2569"/>)"));
  ASSERT_TRUE(be.message.IsObject());
  EXPECT_STREQ(be.message["body"]["person"]["birthDate"].GetString(), "2008-08-15");
  EXPECT_STREQ(be.message["body"]["events"][0]["date"].GetString(), "2026-11-18");

  // The hotline's received time and a warrant's dates follow the root too.
  auto tip = decode_ok(
      R"(<LaoPoliceMessage version="1.3" type="hotline" ref="X" date="20/11/2026" time="14:05" )"
      R"(calendar="CE" classification="general"><Hotline line="1300" )"
      R"(received="20/11/2026 14:00" urgency="high">text</Hotline></LaoPoliceMessage>)");
  ASSERT_TRUE(tip.message.IsObject());
  EXPECT_STREQ(tip.message["body"]["receivedAt"].GetString(), "2026-11-20T07:00:00Z");
  std::string wanted = test::read_file(golden_dir() / "wanted.xml");
  wanted.replace(wanted.find(R"(date="02/12/2569")"), 17, R"(date="02/12/2026" calendar="CE")");
  wanted.replace(wanted.find(R"(issued="25/11/2569")"), 19, R"(issued="25/11/2026")");
  wanted.replace(wanted.find(R"(date="28/11/2569")"), 17, R"(date="28/11/2026")");
  auto w = decode_ok(wanted);
  ASSERT_TRUE(w.message.IsObject());
  EXPECT_STREQ(w.message["body"]["warrants"][0]["issued"].GetString(), "2026-11-25");
  EXPECT_STREQ(w.message["body"]["lastSeen"]["date"].GetString(), "2026-11-28");
  EXPECT_STREQ(w.message["body"]["person"]["birthDate"].GetString(), "1985");  // own BE
}

TEST_F(LaMps, ACommonEraBirthYearReadAsBuddhistEraIsRefusedWithAHint) {
  // 2008 read as BE is 1465: a child would become an adult. Refused, with a hint, not the date.
  for (const std::string birth :
       {"15/08/2008", "00/08/2008", "00/00/1990", R"(<BirthDate calendar="BE">15/08/2008)"}) {
    SCOPED_TRACE(birth);
    const std::string element =
        birth[0] == '<' ? birth + "</BirthDate>" : "<BirthDate>" + birth + "</BirthDate>";
    const auto result = la().decode(victim_xml(plain_person + element, ""), context());
    EXPECT_EQ(result.status, 422);
    ASSERT_EQ(result.errors.size(), 1u) << errors_text(result.errors);
    EXPECT_EQ(result.errors[0].pointer, "/LaoPoliceMessage/Person/BirthDate");
    EXPECT_NE(result.errors[0].reason.find("Common-Era year written without calendar=\"CE\""),
              std::string::npos)
        << result.errors[0].reason;
    EXPECT_EQ(result.errors[0].reason.find("2008"), std::string::npos);
    EXPECT_EQ(result.errors[0].reason.find("1990"), std::string::npos);
    EXPECT_EQ(result.errors[0].reason.find("1465"), std::string::npos);
  }
  // 1899 in CE is refused too, without the hint.
  expect_refused(
      victim_xml(plain_person + R"(<BirthDate calendar="CE">31/12/1899</BirthDate>)", ""), 422,
      "/LaoPoliceMessage/Person/BirthDate", "is before 1900");
  // 1900 is the first plausible year: BE 2443.
  auto first = decode_ok(victim_xml(plain_person + "<BirthDate>01/01/2443</BirthDate>", ""));
  ASSERT_TRUE(first.message.IsObject());
  EXPECT_STREQ(first.message["body"]["person"]["birthDate"].GetString(), "1900-01-01");
}

TEST_F(LaMps, ABuddhistEraBirthYearMarkedCommonEraIsRefusedWithAHint) {
  // The message is of 20/11/2569 BE (2026-11-20); 2551 read as CE is in the future.
  const auto result = la().decode(
      victim_xml(plain_person + R"(<BirthDate calendar="CE">15/08/2551</BirthDate>)", ""),
      context());
  EXPECT_EQ(result.status, 422);
  ASSERT_EQ(result.errors.size(), 1u) << errors_text(result.errors);
  EXPECT_EQ(result.errors[0].pointer, "/LaoPoliceMessage/Person/BirthDate");
  EXPECT_NE(result.errors[0].reason.find("Buddhist-Era year marked calendar=\"CE\""),
            std::string::npos)
      << result.errors[0].reason;
  EXPECT_EQ(result.errors[0].reason.find("2551"), std::string::npos);
  // A birth date after the message's day, in BE, is refused too; the day itself is fine.
  expect_refused(victim_xml(plain_person + "<BirthDate>21/11/2569</BirthDate>", ""), 422,
                 "/LaoPoliceMessage/Person/BirthDate", "is after the message's date");
  auto today = decode_ok(victim_xml(plain_person + "<BirthDate>20/11/2569</BirthDate>", ""));
  ASSERT_TRUE(today.message.IsObject());
  EXPECT_STREQ(today.message["body"]["person"]["birthDate"].GetString(), "2026-11-20");
  auto this_year = decode_ok(victim_xml(plain_person + "<BirthDate>00/00/2569</BirthDate>", ""));
  ASSERT_TRUE(this_year.message.IsObject());
  EXPECT_STREQ(this_year.message["body"]["person"]["birthDate"].GetString(), "2026");
}

/// Decodes `xml`, expects exactly one error, at `pointer`, whose reason holds `reason_part` and
/// none of `not_quoted`.
void expect_only_error(const decode_result& result, const std::string& pointer,
                       const std::string& reason_part, const std::vector<std::string>& not_quoted) {
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(result.message.IsNull());
  ASSERT_EQ(result.errors.size(), 1u) << errors_text(result.errors);
  EXPECT_EQ(result.errors[0].pointer, pointer);
  EXPECT_NE(result.errors[0].reason.find(reason_part), std::string::npos)
      << result.errors[0].reason;
  for (const auto& value : not_quoted) {
    EXPECT_EQ(result.errors[0].reason.find(value), std::string::npos) << result.errors[0].reason;
  }
}

const std::string read_as_be_hint = "Common-Era year written without calendar=\"CE\"";
const std::string marked_ce_hint = "Buddhist-Era year marked calendar=\"CE\"";

// Not only dates of birth: every date of the message is judged against the message's own date,
// each with bounds of its own (docs/adapters/la-mps.md, "Calendars"), so a year in the wrong era
// (543 years off, still a real date) is refused at its place with the calendar named.
TEST_F(LaMps, EveryDateInTheWrongEraIsRefusedAtItsPlaceWithAHint) {
  const std::string victim = test::read_file(golden_dir() / "victim.xml");
  const std::string wanted = test::read_file(golden_dir() / "wanted.xml");
  const std::string request = test::read_file(golden_dir() / "verify-request.xml");
  const std::string tip = test::read_file(golden_dir() / "hotline.xml");
  struct wrong_era {
    std::string xml;
    std::string pointer;
    std::string hint;
    std::vector<std::string> not_quoted;
  };
  const std::vector<wrong_era> cases = {
      // A Common-Era year in a Buddhist-Era message: 2026 read as BE is 1483.
      {replaced(victim, R"(date="18/11/2569")", R"(date="18/11/2026")"),
       "/LaoPoliceMessage/Victim/Found/@date",
       read_as_be_hint,
       {"2026", "1483", "18/11"}},
      {replaced(wanted, R"(issued="25/11/2569")", R"(issued="01/03/2026")"),
       "/LaoPoliceMessage/Warrant/@issued",
       read_as_be_hint,
       {"2026", "1483", "01/03"}},
      {replaced(wanted, R"(issued="25/11/2569")", R"(issued="25/11/2569" expires="01/03/2028")"),
       "/LaoPoliceMessage/Warrant/@expires",
       read_as_be_hint,
       {"2028", "1485", "01/03"}},
      {replaced(wanted, R"(date="28/11/2569")", R"(date="10/11/2026")"),
       "/LaoPoliceMessage/Warrant/LastSeen/@date",
       read_as_be_hint,
       {"2026", "1483", "10/11"}},
      {replaced(request, R"(deadline="19/12/2569")", R"(deadline="30/11/2026")"),
       "/LaoPoliceMessage/Questions/@deadline",
       read_as_be_hint,
       {"2026", "1483", "30/11"}},
      {replaced(tip, R"(received="21/11/2569 22:15")", R"(received="21/11/2026 22:15")"),
       "/LaoPoliceMessage/Hotline/@received",
       read_as_be_hint,
       {"2026", "1483", "22:15"}},
      // A Buddhist-Era year marked CE, on the element or through the root: 2569 CE.
      {replaced(victim, R"(date="20/11/2569")", R"(date="20/11/2026" calendar="CE")"),
       "/LaoPoliceMessage/Victim/Found/@date",
       marked_ce_hint,
       {"2569", "18/11"}},
      {replaced(request, R"(deadline="19/12/2569")", R"(deadline="19/12/2569" calendar="CE")"),
       "/LaoPoliceMessage/Questions/@deadline",
       marked_ce_hint,
       {"2569", "19/12"}},
      {replaced(wanted, R"(<LastSeen province="VN-30" date="28/11/2569")",
                R"(<LastSeen province="VN-30" date="28/11/2569" calendar="CE")"),
       "/LaoPoliceMessage/Warrant/LastSeen/@date",
       marked_ce_hint,
       {"2569", "28/11"}},
      {replaced(tip, R"(received="21/11/2569 22:15")",
                R"(received="21/11/2569 22:15" calendar="CE")"),
       "/LaoPoliceMessage/Hotline/@received",
       marked_ce_hint,
       {"2569", "22:15"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.pointer + " " + c.hint);
    expect_only_error(la().decode(c.xml, context()), c.pointer, c.hint, c.not_quoted);
  }
  // A warrant with its own calendar="CE" and BE years: both dates are named.
  const auto both =
      la().decode(replaced(wanted, R"(issued="25/11/2569")",
                           R"(issued="25/11/2569" expires="25/11/2574" calendar="CE")"),
                  context());
  EXPECT_EQ(both.status, 422);
  EXPECT_EQ(both.errors.size(), 2u) << errors_text(both.errors);
  for (const std::string pointer :
       {"/LaoPoliceMessage/Warrant/@issued", "/LaoPoliceMessage/Warrant/@expires"}) {
    bool named = false;
    for (const auto& e : both.errors) {
      named = named || (e.pointer == pointer && e.reason.find(marked_ce_hint) != std::string::npos);
    }
    EXPECT_TRUE(named) << pointer << "\n" << errors_text(both.errors);
  }
}

// The reviewer's case: root calendar="CE" with a Common-Era message date, a BE year on <Found>.
TEST_F(LaMps, AFoundDateInTheWrongEraUnderACommonEraRootIsRefused) {
  std::string xml = test::read_file(golden_dir() / "victim.xml");
  xml = replaced(xml, R"(date="20/11/2569" time="14:05")",
                 R"(date="20/11/2026" time="14:05" calendar="CE")");
  xml = replaced(xml, "<BirthDate calendar=\"BE\" approx=\"false\">15/08/2551",
                 "<BirthDate approx=\"false\">15/08/2008");
  auto fine = decode_ok(replaced(xml, R"(date="18/11/2569")", R"(date="18/11/2026")"));
  ASSERT_TRUE(fine.message.IsObject());
  EXPECT_STREQ(fine.message["body"]["events"][0]["date"].GetString(), "2026-11-18");
  expect_only_error(la().decode(xml, context()), "/LaoPoliceMessage/Victim/Found/@date",
                    marked_ce_hint, {"2569", "18/11"});
}

// The bounds never refuse a real message: old warrants, warrants that run for decades, a past
// or a far deadline, a sighting years ago, and the little slack a mistyped day needs.
TEST_F(LaMps, DatesWithinTheirBoundsAreAccepted) {
  const std::string wanted = test::read_file(golden_dir() / "wanted.xml");  // of 02/12/2569
  auto w = decode_ok(replaced(
      replaced(wanted, R"(issued="25/11/2569")", R"(issued="03/12/2469" expires="00/00/2668")"),
      R"(date="28/11/2569")", R"(date="00/00/2470")"));
  ASSERT_TRUE(w.message.IsObject());
  EXPECT_STREQ(w.message["body"]["warrants"][0]["issued"].GetString(), "1926-12-03");
  EXPECT_STREQ(w.message["body"]["warrants"][0]["expires"].GetString(), "2125");
  EXPECT_STREQ(w.message["body"]["lastSeen"]["date"].GetString(), "1927");
  auto ahead = decode_ok(replaced(wanted, R"(issued="25/11/2569")", R"(issued="02/12/2570")"));
  ASSERT_TRUE(ahead.message.IsObject());  // a year after the message: a typo, not an era
  const std::string request = test::read_file(golden_dir() / "verify-request.xml");  // 05/12/2569
  for (const std::string deadline : {"05/12/2559", "05/12/2579", "01/01/2560"}) {
    SCOPED_TRACE(deadline);
    auto r =
        decode_ok(replaced(request, R"(deadline="19/12/2569")", "deadline=\"" + deadline + "\""));
    EXPECT_TRUE(r.message.IsObject());
  }
  // Just outside: a deadline 10 years and a day before, a warrant issued a year and a day after.
  expect_refused(replaced(request, R"(deadline="19/12/2569")", R"(deadline="04/12/2559")"), 422,
                 "/LaoPoliceMessage/Questions/@deadline", "more than 10 years before");
  expect_refused(replaced(wanted, R"(issued="25/11/2569")", R"(issued="03/12/2570")"), 422,
                 "/LaoPoliceMessage/Warrant/@issued", "more than 1 year after");
  expect_refused(replaced(wanted, R"(issued="25/11/2569")", R"(issued="01/12/2469")"), 422,
                 "/LaoPoliceMessage/Warrant/@issued", "more than 100 years before");
}

// The message's own date is judged against the gateway's clock; a year in the wrong era there is
// named at @date with its calendar, not as a time of day that cannot be read.
TEST_F(LaMps, AMessageDateInTheWrongEraIsNamedAtTheDateWithTheCalendar) {
  const std::string victim = test::read_file(golden_dir() / "victim.xml");
  // calendar="CE" with a BE year: 2569 CE is past what the clock holds.
  const std::string ce_root = replaced(victim, R"(date="20/11/2569" time="14:05")",
                                       R"(date="20/11/2569" time="14:05" calendar="CE")");
  auto ce = la().decode(ce_root, context());
  EXPECT_EQ(ce.status, 422);
  bool named = false;
  for (const auto& e : ce.errors) {
    EXPECT_NE(e.pointer, "/LaoPoliceMessage/@time") << e.reason;
    EXPECT_EQ(e.reason.find("2569"), std::string::npos) << e.reason;
    named = named || (e.pointer == "/LaoPoliceMessage/@date" &&
                      e.reason.find(marked_ce_hint) != std::string::npos);
  }
  EXPECT_TRUE(named) << errors_text(ce.errors);
  // BE by default with a CE year: 2026 read as BE is 1483.
  expect_only_error(
      la().decode(replaced(victim, R"(date="20/11/2569" time)", R"(date="20/11/2026" time)"),
                  context()),
      "/LaoPoliceMessage/@date", read_as_be_hint, {"2026", "1483", "20/11"});
  // Judged against the clock given: the golden message read 90 years on is still fine.
  auto later = context();
  later.now = *parse_rfc3339("2116-01-01T00:00:00Z");
  EXPECT_EQ(la().decode(victim, later).status, 0);
  later.now = *parse_rfc3339("2130-01-01T00:00:00Z");
  const auto old = la().decode(victim, later);
  EXPECT_EQ(old.status, 422);
  ASSERT_FALSE(old.errors.empty());
  EXPECT_EQ(old.errors[0].pointer, "/LaoPoliceMessage/@date");
  EXPECT_NE(old.errors[0].reason.find("more than 100 years before the gateway's clock"),
            std::string::npos)
      << old.errors[0].reason;
}

// ---------------------------------------------------------------------------------------------
// Person roles

TEST_F(LaMps, AHotlineSubjectIsAPossibleVictim) {
  // The person a tip is about (a missing girl) must get a victim's protection in routing, which
  // withholds for possible-victim subjects.
  std::string xml = test::read_file(golden_dir() / "hotline.xml");
  xml.replace(xml.find(R"(role="victim")"), 13, R"(role="subject")");
  xml.insert(xml.find("<Nationality>"), R"(<Document type="id-card" issuer="LAO">0812</Document>)");
  auto d = decode_ok(xml);
  ASSERT_TRUE(d.message.IsObject());
  EXPECT_STREQ(d.message["body"]["subjects"][0]["role"].GetString(), "possible-victim");
  expect_canonical(d.message, la_sender);
  // A suspect stays a suspected trafficker.
  std::string suspect = test::read_file(golden_dir() / "hotline.xml");
  suspect.replace(suspect.find(R"(role="victim")"), 13, R"(role="suspect")");
  auto s = decode_ok(suspect);
  ASSERT_TRUE(s.message.IsObject());
  EXPECT_STREQ(s.message["body"]["subjects"][0]["role"].GetString(), "suspected-trafficker");
}

TEST_F(LaMps, AWitnessIsWrittenAsASubjectAndComesBackAsAPossibleVictim) {
  auto tip = parse_json(test::read_file(golden_dir() / "hotline.json"));
  tip["body"]["subjects"][0]["role"].SetString("witness");
  const std::string xml = encode_ok(tip);
  EXPECT_NE(xml.find(R"(<Person role="subject">)"), std::string::npos) << xml;
  auto back = decode_ok(xml);
  ASSERT_TRUE(back.message.IsObject());
  EXPECT_STREQ(back.message["body"]["subjects"][0]["role"].GetString(), "possible-victim");
  // A possible victim is written as a victim.
  tip["body"]["subjects"][0]["role"].SetString("possible-victim");
  EXPECT_NE(encode_ok(tip).find(R"(<Person role="victim">)"), std::string::npos);
}

TEST_F(LaMps, RefusesASuspectAsTheVictimAndAnyoneButASuspectAsTheWanted) {
  std::string suspect = victim_xml(plain_person, "");
  suspect.replace(suspect.find(R"(role="victim")"), 13, R"(role="suspect")");
  expect_refused(suspect, 422, "/LaoPoliceMessage/Person/@role", "the victim");
  std::string subject = victim_xml(plain_person, "");
  subject.replace(subject.find(R"(role="victim")"), 13, R"(role="subject")");
  decode_ok(subject);
  for (const std::string role : {"victim", "subject"}) {
    SCOPED_TRACE(role);
    std::string wanted = test::read_file(golden_dir() / "wanted.xml");
    wanted.replace(wanted.find(R"(role="suspect")"), 14, "role=\"" + role + "\"");
    expect_refused(wanted, 422, "/LaoPoliceMessage/Person/@role", "must be 'suspect'");
  }
}

TEST_F(LaMps, RefusesMissingRequiredAttributesAndElements) {
  std::string no_ref = test::read_file(golden_dir() / "receipt.xml");
  no_ref.replace(no_ref.find(" ref=\"HP-2569-0043\""), 19, "");
  expect_refused(no_ref, 422, "/LaoPoliceMessage/@ref", "is required");
  std::string no_reply = test::read_file(golden_dir() / "receipt.xml");
  no_reply.replace(no_reply.find(" replyTo=\"VN21-2026-000031\""), 27, "");
  expect_refused(no_reply, 422, "/LaoPoliceMessage/@replyTo", "is required");
  expect_refused(victim_xml(R"(<Name family="X"/>)", ""), 422,
                 "/LaoPoliceMessage/Person/Name[1]/@script", "is required");
  expect_refused(victim_xml(R"(<Name script="latin"/>)", ""), 422,
                 "/LaoPoliceMessage/Person/Name[1]", "needs a family or a given name");
  expect_refused(victim_xml("", ""), 422, "/LaoPoliceMessage/Person",
                 "needs at least one <Name> or <Alias>");
  std::string no_victim = victim_xml(plain_person, "");
  no_victim.erase(no_victim.find("<Victim"),
                  no_victim.find("</Victim>") + 9 - no_victim.find("<Victim"));
  expect_refused(no_victim, 422, "/LaoPoliceMessage/Victim", "is required");
}

// LA-MPS requires one or more <Exploitation>: a <Victim> without one is not LA-MPS. The
// refusal names the <Victim> and nothing of the person.
TEST_F(LaMps, RefusesAVictimWithoutExploitation) {
  std::string xml = test::read_file(golden_dir() / "victim.xml");
  xml = replaced(xml, "    <Exploitation>marriage</Exploitation>\n", "");
  expect_only_error(la().decode(xml, context()), "/LaoPoliceMessage/Victim",
                    "needs at least one <Exploitation>",
                    {"PHOMMAVONG", "KHAMLA", "0812-4477-19", "2551", "15/08"});
  // Still refused when unknown codes may be carried: there is none to carry.
  expect_refused(xml, 422, "/LaoPoliceMessage/Victim", "needs at least one <Exploitation>", true);
  // One the gateway does not know, carried in `unmapped`, was sent: that is not this refusal.
  auto carried = decode_ok(replaced(test::read_file(golden_dir() / "victim.xml"),
                                    "<Exploitation>marriage<", "<Exploitation>trafficking<"),
                           la_sender, true);
  ASSERT_TRUE(carried.message.IsObject());
  EXPECT_FALSE(carried.message["body"].HasMember("exploitation"));
  EXPECT_STREQ(carried.message["unmapped"]["/LaoPoliceMessage/Victim/Exploitation[1]"].GetString(),
               "trafficking");
}

TEST_F(LaMps, RefusesWhatLaMpsDoesNotDefine) {
  expect_refused(victim_xml(plain_person + "<Tattoo>dragon</Tattoo>", ""), 422,
                 "/LaoPoliceMessage/Person/Tattoo", "is not an element");
  expect_refused(victim_xml(plain_person, "", R"( priority="1")"), 422,
                 "/LaoPoliceMessage/@priority", "is not an attribute");
  expect_refused(victim_xml(plain_person + "<Gender>F</Gender><Gender>M</Gender>", ""), 422,
                 "/LaoPoliceMessage/Person/Gender[2]", "may appear only once");
  std::string warrant_in_victim = victim_xml(plain_person, "");
  warrant_in_victim.insert(warrant_in_victim.find("</LaoPoliceMessage>"),
                           R"(<Warrant number="1"/>)");
  expect_refused(warrant_in_victim, 422, "/LaoPoliceMessage/Warrant", "is not an element");
  expect_refused(victim_xml(plain_person, "text here"), 422, "/LaoPoliceMessage/Victim",
                 "holds text");
}

TEST_F(LaMps, RefusesAnUnknownClassificationEvenWhenCarrying) {
  std::string xml = test::read_file(golden_dir() / "receipt.xml");
  xml.replace(xml.find("classification=\"general\""), 24, "classification=\"top\"");
  expect_refused(xml, 422, "/LaoPoliceMessage/@classification",
                 "'top' is not in table 'classification'", true);
}

TEST_F(LaMps, LongPartnerValuesAreQuotedShortInErrors) {
  const std::string long_value(5000, 'Q');
  const auto result =
      la().decode(victim_xml(plain_person + "<Gender>" + long_value + "</Gender>", ""), context());
  ASSERT_EQ(result.status, 422);
  EXPECT_LT(result.errors[0].reason.size(), 200u);
}

TEST_F(LaMps, AReceiptNamingAReferenceTheGatewayDidNotWriteIsKeptWithAPlaceholder) {
  // The description's own receipt names "VN21-2026-000031", a reference the gateway cannot tie to
  // a message: the acknowledgement is accepted, the envelope makes no link, the body names a
  // placeholder (a receipt must name a UUID), the reference is the thread and goes out as written.
  auto d = decode_ok(test::read_file(golden_dir() / "receipt.xml"));
  EXPECT_FALSE(d.message.HasMember("inReplyTo"));
  EXPECT_STREQ(d.message["caseRef"].GetString(), "VN21-2026-000031");
  EXPECT_EQ(std::string(d.message["body"]["inReplyTo"].GetString()),
            message_uuid("la-mps:reply-to", "VN21-2026-000031"));
  EXPECT_STREQ(d.message["unmapped"]["/LaoPoliceMessage/@replyTo"].GetString(), "VN21-2026-000031");
  EXPECT_NE(encode_ok(d.message).find(R"(replyTo="VN21-2026-000031")"), std::string::npos);
}

// The LA-MPS document of `type` with replyTo `reference`, for the reply kinds.
std::string reply_xml(const std::string& type, const std::string& reference) {
  const std::string head = R"(<?xml version="1.0" encoding="UTF-8"?>
<LaoPoliceMessage version="1.3" type=")" +
                           type +
                           R"(" ref="HP-2569-VA-0011" date="25/11/2569" time="09:00" )"
                           R"(classification="general" replyTo=")" +
                           reference + "\">\n";
  if (type == "receipt") {
    return head + "<Receipt status=\"received\"/>\n</LaoPoliceMessage>\n";
  }
  return head + "<Person role=\"subject\">" + plain_person +
         "</Person>\n<Answer result=\"confirmed\"/>\n</LaoPoliceMessage>\n";
}

TEST_F(LaMps, AnAnswerToTheOfficesOwnRequestNamesItsRef) {
  const auto result =
      parse_json(test::read_file(test::source_dir() / "config/examples/verification.result.json"));
  const std::string answered = result["inReplyTo"].GetString();
  adapter_context out = context("vn-gialai");
  out.recipient = la_sender;
  out.answered_id = answered;
  out.answered_reference = "SV-2569-VR-0019";
  auto sent = la().encode(result, out);
  ASSERT_EQ(sent.status, 0) << errors_text(sent.errors);
  EXPECT_NE(sent.bytes.find(R"(replyTo="SV-2569-VR-0019")"), std::string::npos) << sent.bytes;
  out.answered_id = "00000000-0000-4000-8000-000000000000";
  sent = la().encode(result, out);
  EXPECT_NE(sent.bytes.find("replyTo=\"" + answered + "\""), std::string::npos) << sent.bytes;
}

TEST_F(LaMps, AReplyNamingTheRefTheGatewaySentIsLinkedToThatMessage) {
  // The request Gia Lai sent Houaphanh, as Houaphanh received it.
  const auto request =
      parse_json(test::read_file(test::source_dir() / "config/examples/verification.request.json"));
  adapter_context out = context("vn-gialai");
  out.recipient = la_sender;
  const auto sent = la().encode(request, out);
  ASSERT_EQ(sent.status, 0) << errors_text(sent.errors);
  const std::string ref = "VN30-VR-2026-000088/5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085";
  EXPECT_NE(sent.bytes.find("ref=\"" + ref + "\""), std::string::npos) << sent.bytes;

  for (const std::string type : {"verify-reply", "receipt"}) {
    SCOPED_TRACE(type);
    const auto d = decode_ok(reply_xml(type, ref));
    EXPECT_STREQ(d.message["inReplyTo"].GetString(), "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085");
    EXPECT_FALSE(d.message.HasMember("caseRef"));
    EXPECT_FALSE(d.message.HasMember("unmapped"));
    if (type == "receipt") {
      EXPECT_STREQ(d.message["body"]["inReplyTo"].GetString(),
                   "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085");
    }
    expect_canonical(d.message, la_sender);
  }

  // A verification reply naming a reference the gateway did not write: no link is made up (a
  // placeholder would look like an answer to a request that does not exist); the thread is kept.
  const auto foreign = decode_ok(reply_xml("verify-reply", "HP-VR-2569-0003"));
  EXPECT_FALSE(foreign.message.HasMember("inReplyTo"));
  EXPECT_STREQ(foreign.message["caseRef"].GetString(), "HP-VR-2569-0003");
  expect_canonical(foreign.message, la_sender);
}

TEST_F(LaMps, ADamagedGatewayReferenceIsRefusedWithoutEchoingIt) {
  for (const std::string reference : {"VN30-VR-2026-000088/5d0e9b27-8c6f-4a13-a2d4-7e3b1f6cZZZZ",
                                      "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c908g",
                                      "VN30-VR-2026-000088/5d0e9b27-8c6f&#9;-4a13-a2d4"}) {
    for (const std::string type : {"verify-reply", "receipt"}) {
      SCOPED_TRACE(type + " " + reference);
      const auto result = la().decode(reply_xml(type, reference), context());
      EXPECT_EQ(result.status, 422);
      EXPECT_TRUE(result.message.IsNull());
      ASSERT_FALSE(result.errors.empty());
      bool named = false;
      for (const auto& e : result.errors) {
        named =
            named || (e.pointer == "/LaoPoliceMessage/@replyTo" &&
                      e.reason.find("is not a reference the gateway wrote") != std::string::npos);
        EXPECT_EQ(e.reason.find("5d0e9b27"), std::string::npos) << e.reason;
        EXPECT_EQ(e.reason.find("VN30"), std::string::npos) << e.reason;
      }
      EXPECT_TRUE(named) << errors_text(result.errors);
    }
  }
}

TEST_F(LaMps, TheSenderComesFromTheContextNeverFromTheBytes) {
  auto a = decode_ok(test::read_file(golden_dir() / "victim.xml"), "la-houaphanh");
  auto b = decode_ok(test::read_file(golden_dir() / "victim.xml"), "la-attapeu");
  EXPECT_STREQ(a.message["sender"].GetString(), "la-houaphanh");
  EXPECT_STREQ(b.message["sender"].GetString(), "la-attapeu");
  EXPECT_STRNE(a.message["id"].GetString(), b.message["id"].GetString());
}

// ---------------------------------------------------------------------------------------------
// Encoding

TEST_F(LaMps, EncodingEscapesMarkupQuotesAndLineBreaks) {
  auto m = parse_json(test::read_file(golden_dir() / "victim.json"));
  auto& a = m.GetAllocator();
  auto& latin = m["body"]["person"]["names"][1];
  latin["family"][0].SetString("A<B&C\"D\r\nE'F", a);
  m["body"]["narrative"]["text"].SetString("</Narrative><Injected/> & ]]> <!-- -->", a);
  const std::string xml = encode_ok(m);
  EXPECT_NE(xml.find(R"(family="A&lt;B&amp;C&quot;D&#13;&#10;E'F")"), std::string::npos) << xml;
  EXPECT_EQ(xml.find("<Injected"), std::string::npos) << xml;
  EXPECT_EQ(xml.find("<B&"), std::string::npos) << xml;
  auto back = decode_ok(xml);
  EXPECT_STREQ(back.message["body"]["person"]["names"][1]["family"][0].GetString(),
               "A<B&C\"D\r\nE'F");
  EXPECT_STREQ(back.message["body"]["narrative"]["text"].GetString(),
               "</Narrative><Injected/> & ]]> <!-- -->");
}

TEST_F(LaMps, EncodingNeverSendsATransliterationAsTheOfficialLatinName) {
  // The official <Name script="latin"> is authoritative for Laos: only the source's primary
  // Latin name may be it. A transliteration the gateway made goes as an <Alias>.
  auto m = parse_json(test::read_file(golden_dir() / "victim.json"));
  m["body"]["person"]["names"][1]["kind"].SetString("transliteration");
  std::string xml = encode_ok(m);
  EXPECT_EQ(xml.find(R"(<Name script="latin")"), std::string::npos) << xml;
  EXPECT_NE(xml.find(R"(<Name script="lao")"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<Alias>KHAMLA PHOMMAVONG</Alias>"), std::string::npos) << xml;

  // Listed before the partner's own Latin name, it still does not take its place.
  auto both = parse_json(test::read_file(golden_dir() / "victim.json"));
  auto& names = both["body"]["person"]["names"];
  json_value made(names[1], both.GetAllocator());
  made["kind"].SetString("transliteration");
  made["family"][0].SetString("PHOMMAWONG");
  names.PushBack(made, both.GetAllocator());
  names[1].Swap(names[2]);  // Laoo primary, Latn transliteration, Latn primary
  xml = encode_ok(both);
  EXPECT_NE(xml.find(R"(<Name script="latin" family="PHOMMAVONG" given="KHAMLA"/>)"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<Alias>KHAMLA PHOMMAWONG</Alias>"), std::string::npos) << xml;

  // Nor does a Lao name that is not primary become the official Lao <Name>.
  auto birth = parse_json(test::read_file(golden_dir() / "victim.json"));
  birth["body"]["person"]["names"][0]["kind"].SetString("birth");
  xml = encode_ok(birth);
  EXPECT_EQ(xml.find(R"(<Name script="lao")"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<Alias>ຄຳລາ ພົມມະວົງ</Alias>"), std::string::npos) << xml;
}

TEST_F(LaMps, EncodingWritesBuddhistEraDatesAndLaoTime) {
  auto m = parse_json(test::read_file(golden_dir() / "verify-reply.json"));
  const std::string xml = encode_ok(m);
  EXPECT_NE(xml.find(R"(date="29/02/2567" time="16:20" calendar="BE")"), std::string::npos) << xml;
  EXPECT_NE(xml.find(R"(<BirthDate calendar="BE">29/02/2547</BirthDate>)"), std::string::npos)
      << xml;
  EXPECT_NE(xml.find(R"(<Nationality>LAO</Nationality>)"), std::string::npos) << xml;
  EXPECT_EQ(xml.rfind(R"(<?xml version="1.0" encoding="UTF-8"?>)", 0), 0u) << xml;
}

TEST_F(LaMps, EncodingRefusesWhatLaMpsCannotSay) {
  auto victim = parse_json(test::read_file(golden_dir() / "victim.json"));
  victim["body"]["status"].SetString("not-a-victim");
  auto r = la().encode(victim, context());
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.errors.at(0).pointer, "/body/status");

  auto wanted = parse_json(test::read_file(golden_dir() / "wanted.json"));
  wanted["body"]["requestedAction"].SetString("monitor");
  r = la().encode(wanted, context());
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.errors.at(0).pointer, "/body/requestedAction");
  wanted["body"]["requestedAction"].SetString("locate-and-arrest");
  wanted["body"]["warrants"][0].RemoveMember("number");
  r = la().encode(wanted, context());
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.errors.at(0).pointer, "/body/warrants/0/number");

  auto tip = parse_json(test::read_file(golden_dir() / "hotline.json"));
  tip["body"]["channel"].SetString("ngo-referral");
  r = la().encode(tip, context());
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.errors.at(0).pointer, "/body/channel");

  auto control = parse_json(test::read_file(golden_dir() / "victim.json"));
  control["body"]["narrative"]["text"].SetString("bell \x07 character");
  r = la().encode(control, context());
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.errors.at(0).pointer, "/body/narrative/text");
  EXPECT_TRUE(r.bytes.empty());
}

// A victim whose exploitation is not known (yet) cannot be written: LA-MPS requires one and
// has no "unknown"; its `other` would report a form the sender did not. Refused at the field.
TEST_F(LaMps, EncodingRefusesAVictimWithoutExploitation) {
  for (const bool empty_list : {false, true}) {
    SCOPED_TRACE(empty_list ? "empty list" : "no member");
    auto victim = parse_json(test::read_file(golden_dir() / "victim.json"));
    if (empty_list) {
      victim["body"]["exploitation"].SetArray();
    } else {
      victim["body"].RemoveMember("exploitation");
    }
    const auto r = la().encode(victim, context());
    EXPECT_EQ(r.status, 422);
    ASSERT_EQ(r.errors.size(), 1u) << errors_text(r.errors);
    EXPECT_EQ(r.errors[0].pointer, "/body/exploitation");
    EXPECT_NE(r.errors[0].reason.find("is required by LA-MPS"), std::string::npos);
    EXPECT_EQ(r.errors[0].reason.find("PHOMMAVONG"), std::string::npos);
    EXPECT_TRUE(r.bytes.empty());
  }
}

// --- a warrant's issuing country -----------------------------------------------------------------
// LA-MPS has no field for it: the authority names it, "... (issuing country: VNM)"; without that
// only an office's own message, answering nothing, is taken to carry a Lao warrant (or one of
// its <Sender>'s country).

/// Words a refusal about a warrant must not repeat: the persons, the numbers, the authorities.
const std::vector<std::string> warrant_personal_data = {
    "SISOUVANH", "BOUNMY",    "ສີສຸວັນ",     "P1234567",    "AT/W/2569/031",
    "Attapeu",   "Sanamxay",  "Trần",     "Mẫu",         "EXAMPLE-LB-0001",
    "Gia Lai",   "Cơ quan",   "Ubon",     "1985",        "1990",
    "2569",      "VN30-2026", "9a7c2d54", "AT-2569-0107"};

/// `result` is a refusal with no message and exactly one error, at `pointer`, saying each of
/// `words`, that repeats none of the personal data or free text of the message.
void expect_only_refusal(const decode_result& result, const std::string& pointer,
                         const std::vector<std::string>& words) {
  EXPECT_EQ(result.status, 422);
  EXPECT_TRUE(result.message.IsNull()) << "nothing half-translated";
  ASSERT_EQ(result.errors.size(), 1u) << errors_text(result.errors);
  EXPECT_EQ(result.errors[0].pointer, pointer) << errors_text(result.errors);
  for (const auto& w : words) {
    EXPECT_NE(result.errors[0].reason.find(w), std::string::npos) << result.errors[0].reason;
  }
  for (const auto& personal : warrant_personal_data) {
    EXPECT_EQ(result.errors[0].reason.find(personal), std::string::npos) << result.errors[0].reason;
  }
  EXPECT_EQ(result.errors[0].reason.find("'LA'"), std::string::npos) << result.errors[0].reason;
}

const std::string say_how = "'(issuing country: LAO)'";
const std::string viet_authority = "Cơ quan Cảnh sát điều tra Công an tỉnh Gia Lai";
const std::string lao_authority = "Attapeu Provincial People's Court";

/// `xml` with the <Warrant authority> replaced by `authority` (an attribute value, escaped).
std::string with_authority(const std::string& xml, const std::string& authority) {
  static const std::regex attr(R"re(authority="[^"]*")re");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(xml, m, attr)) << xml;
  return m.empty() ? xml : m.prefix().str() + "authority=\"" + authority + "\"" + m.suffix().str();
}

TEST_F(LaMps, AForeignWarrantThatCameThroughTheGatewayIsNotMadeLao) {
  const auto original =
      parse_json(test::read_file(test::source_dir() / "config/examples/person.wanted.json"));
  const auto& sent_warrant = original["body"]["warrants"][0];
  ASSERT_STREQ(sent_warrant["issuingCountry"].GetString(), "VN");
  adapter_context out = context("vn-gialai");
  out.recipient = la_sender;
  const auto sent = la().encode(original, out);
  ASSERT_EQ(sent.status, 0) << errors_text(sent.errors);
  const std::string xml = sent.bytes;
  EXPECT_NE(xml.find("authority=\"" + viet_authority + " (issuing country: VNM)\""),
            std::string::npos)
      << "a Vietnamese warrant in a Lao format says it is Vietnamese\n"
      << xml;

  // Returned by Houaphanh under the ref it received, with its own <Sender>: Vietnamese, as sent.
  const std::string returned = replaced(xml, "<Person", R"(<Sender province="LA-HO"/><Person)");
  const auto back = decode_ok(returned);
  ASSERT_TRUE(back.message.IsObject());
  const auto& w = back.message["body"]["warrants"][0];
  EXPECT_STREQ(w["issuingCountry"].GetString(), "VN");
  EXPECT_TRUE(w["issuingAuthority"] == sent_warrant["issuingAuthority"]);
  EXPECT_STREQ(w["charges"][0]["statute"]["jurisdiction"].GetString(), "VN");
  EXPECT_STREQ(w["charges"][0]["statute"]["code"].GetString(), "BLHS-2015 art. 150");
  expect_canonical(back.message, la_sender);

  // As the gateway wrote it before it named the country (the authority alone), under the ref the
  // gateway wrote, its id alone or a damaged copy of it: refused at the warrant, never Lao,
  // carried or not, with or without Houaphanh's <Sender> (the sender, not the issuer).
  const std::string gateway_ref = "VN30-2026-000462/9a7c2d54-1e3f-4b8a-8f20-6c4d1b9e0a33";
  const std::string unmarked = with_authority(returned, viet_authority);
  for (const std::string& ref :
       {gateway_ref, std::string("9A7C2D54-1E3F-4B8A-8F20-6C4D1B9E0A33"),
        std::string("VN30-2026-000462/9a7c2d54-1e3f-4b8a-8f20-6c4d1b9eZZZZ")}) {
    const std::string under =
        replaced(unmarked, "ref=\"" + gateway_ref + "\"", "ref=\"" + ref + "\"");
    for (const std::string& doc : {under, replaced(under, R"(<Sender province="LA-HO"/>)", "")}) {
      for (const bool carry : {false, true}) {
        SCOPED_TRACE(ref + (carry ? " (carry)" : "") + "\n" + doc);
        expect_only_refusal(la().decode(doc, context(la_sender, carry)),
                            "/LaoPoliceMessage/Warrant",
                            {"has no issuing country", "ref is one the gateway wrote", say_how});
      }
    }
  }

  // The same warrant under the office's own ref, answering nothing, is the office's message,
  // which LA-MPS takes to carry a warrant of its <Sender>'s country, else a Lao one.
  const std::string own = replaced(unmarked, "ref=\"" + gateway_ref + "\"", "ref=\"AT-2569-0200\"");
  auto lao = decode_ok(own);
  ASSERT_TRUE(lao.message.IsObject());
  EXPECT_STREQ(lao.message["body"]["warrants"][0]["issuingCountry"].GetString(), "LA");
  auto from_sender = decode_ok(replaced(own, R"(province="LA-HO")", R"(province="VN-30")"));
  ASSERT_TRUE(from_sender.message.IsObject());
  const auto& v = from_sender.message["body"]["warrants"][0];
  EXPECT_STREQ(v["issuingCountry"].GetString(), "VN");
  EXPECT_STREQ(v["charges"][0]["statute"]["jurisdiction"].GetString(), "VN");
  expect_canonical(from_sender.message, la_sender);
}

TEST_F(LaMps, AWarrantInAnAnswerOrUpdateIsNotTakenToBeLao) {
  // Attapeu's wanted message (with its own <Sender province="LA-AT">), sent as an update of the
  // Vietnamese notice the gateway sent it (replyTo: the ref the gateway wrote, or the id), or of
  // one it knows by Gia Lai's own number: the warrant may be Vietnam's.
  const std::string golden = test::read_file(golden_dir() / "wanted.xml");
  const auto expected = parse_json(test::read_file(golden_dir() / "wanted.json"));
  for (const std::string reply_to : {"VN30-2026-000462/9a7c2d54-1e3f-4b8a-8f20-6c4d1b9e0a33",
                                     "9a7c2d54-1e3f-4b8a-8f20-6c4d1b9e0a33", "VN30-2026-000462"}) {
    SCOPED_TRACE(reply_to);
    const std::string update = replaced(golden, R"(classification="ລັບສຸດຍອດ")",
                                        R"(classification="ລັບສຸດຍອດ" replyTo=")" + reply_to + "\"");
    for (const bool carry : {false, true}) {
      expect_only_refusal(
          la().decode(update, context(la_sender, carry)), "/LaoPoliceMessage/Warrant",
          {"has no issuing country", "answers or updates another (replyTo)", say_how});
    }
    // The authority says whose warrant it is: the update is taken, with that country.
    auto vietnamese = decode_ok(with_authority(update,
                                               "Gia Lai Provincial People's Court "
                                               "(issuing country: VNM)"));
    ASSERT_TRUE(vietnamese.message.IsObject());
    const auto& w = vietnamese.message["body"]["warrants"][0];
    EXPECT_STREQ(w["issuingCountry"].GetString(), "VN");
    EXPECT_STREQ(w["issuingAuthority"].GetString(), "Gia Lai Provincial People's Court");
    EXPECT_STREQ(w["charges"][0]["statute"]["jurisdiction"].GetString(), "VN");
    expect_canonical(vietnamese.message, la_sender);
    auto lao = decode_ok(with_authority(update, lao_authority + " (issuing country: LAO)"));
    ASSERT_TRUE(lao.message.IsObject());
    EXPECT_TRUE(lao.message["body"]["warrants"] == expected["body"]["warrants"])
        << pretty(lao.message["body"]["warrants"]);
  }
}

TEST_F(LaMps, TheAuthoritySaysWhichCountryIssuedTheWarrant) {
  // Attapeu passing on a Thai warrant under its own ref: the message says it is Thai, whatever
  // its <Sender> (ASCII case and spaces around the code do not matter).
  const std::string golden = test::read_file(golden_dir() / "wanted.xml");
  auto thai = decode_ok(
      with_authority(golden, "Ubon Ratchathani Provincial Court  (Issuing Country:  tha ) "));
  ASSERT_TRUE(thai.message.IsObject());
  const auto& w = thai.message["body"]["warrants"][0];
  EXPECT_STREQ(w["issuingCountry"].GetString(), "TH");
  EXPECT_STREQ(w["issuingAuthority"].GetString(), "Ubon Ratchathani Provincial Court");
  EXPECT_STREQ(w["charges"][0]["statute"]["jurisdiction"].GetString(), "TH");
  expect_canonical(thai.message, la_sender);

  // The country alone names no authority, which LA-MPS requires.
  for (const bool carry : {false, true}) {
    expect_only_refusal(
        la().decode(with_authority(golden, "(issuing country: LAO)"), context(la_sender, carry)),
        "/LaoPoliceMessage/Warrant/@authority", {"not the issuing authority"});
  }

  // An office's own warrant without a mark is Lao (the golden example), and comes back so.
  auto own = decode_ok(golden);
  ASSERT_TRUE(own.message.IsObject());
  EXPECT_STREQ(own.message["body"]["warrants"][0]["issuingCountry"].GetString(), "LA");
  EXPECT_STREQ(own.message["body"]["warrants"][0]["issuingAuthority"].GetString(),
               lao_authority.c_str());
}

TEST_F(LaMps, AnUnknownOrContradictoryIssuingCountryIsRefused) {
  struct bad_authority {
    std::string authority;
    std::string words;
  };
  const bad_authority cases[] = {
      {lao_authority + " (issuing country: XYZ)", "'XYZ' is not in table 'country'"},
      {lao_authority + " (issuing country: LA)", "'LA' is not in table 'country'"},
      {lao_authority + " (issuing country: )", "'' is not in table 'country'"},
      // Not a code: a name or a number in the wrong place is not quoted.
      {lao_authority + " (issuing country: SISOUVANH BOUNMY)",
       "a code that is not three letters is not in table 'country'"},
      {lao_authority + " (issuing country: P1234567)",
       "a code that is not three letters is not in table 'country'"},
      {lao_authority + " (issuing country: LAO) (issuing country: VNM)",
       "names more than one issuing country ('LAO', 'VNM')"},
      {"(issuing country: VNM) " + lao_authority, "other than at its end"},
      {lao_authority + " (issuing country: VNM", "other than at its end"},
  };
  const std::string golden = test::read_file(golden_dir() / "wanted.xml");
  for (const auto& c : cases) {
    for (const bool carry : {false, true}) {
      SCOPED_TRACE(c.authority + (carry ? " (carry)" : ""));
      // The issuing country is never carried in `unmapped` with another one made up beside it.
      const auto refused =
          la().decode(with_authority(golden, c.authority), context(la_sender, carry));
      if (refused.errors.size() != 1u) {
        ADD_FAILURE() << "not one error:\n" << errors_text(refused.errors);
        continue;
      }
      EXPECT_NE(refused.errors[0].reason.find(c.words), std::string::npos)
          << refused.errors[0].reason;
      for (const auto& personal : warrant_personal_data) {
        EXPECT_EQ(refused.errors[0].reason.find(personal), std::string::npos)
            << refused.errors[0].reason;
      }
      EXPECT_EQ(refused.errors[0].pointer, "/LaoPoliceMessage/Warrant/@authority");
      EXPECT_EQ(refused.status, 422);
      EXPECT_TRUE(refused.message.IsNull());
    }
  }
}

TEST_F(LaMps, AWarrantGoesOutNamingTheCountryThatIssuedIt) {
  // A Lao warrant says so too: no warrant reads as Lao by default.
  const auto lao = parse_json(test::read_file(golden_dir() / "wanted.json"));
  const std::string lao_xml = encode_ok(lao);
  EXPECT_NE(lao_xml.find("authority=\"" + lao_authority + " (issuing country: LAO)\""),
            std::string::npos)
      << lao_xml;

  // What would make the country unsayable is refused, naming the canonical field.
  struct refusal {
    std::string pointer;
    std::optional<std::string> value;  // nullopt: the member is removed
    std::string at;
  };
  const refusal cases[] = {
      {"/body/warrants/0/issuingCountry", "ZZ", "/body/warrants/0/issuingCountry"},
      {"/body/warrants/0/issuingCountry", std::nullopt, "/body/warrants/0/issuingCountry"},
      {"/body/warrants/0/issuingAuthority", viet_authority + " (issuing country: LAO)",
       "/body/warrants/0/issuingAuthority"},
      {"/body/warrants/0/issuingAuthority", viet_authority + " (Issuing Country: LAO",
       "/body/warrants/0/issuingAuthority"},
      {"/body/warrants/0/issuingAuthority", std::string(240, 'A'),
       "/body/warrants/0/issuingAuthority"},
  };
  for (const auto& r : cases) {
    SCOPED_TRACE(r.pointer + " = " + r.value.value_or("(none)"));
    auto bad =
        parse_json(test::read_file(test::source_dir() / "config/examples/person.wanted.json"));
    if (r.value) {
      rapidjson::Pointer(r.pointer.c_str()).Set(bad, r.value->c_str());
    } else {
      rapidjson::Pointer(r.pointer.c_str()).Erase(bad);
    }
    const auto refused = la().encode(bad, context("vn-gialai"));
    EXPECT_EQ(refused.status, 422);
    EXPECT_TRUE(refused.bytes.empty());
    if (refused.errors.size() != 1u) {
      ADD_FAILURE() << "not one error:\n" << errors_text(refused.errors);
      continue;
    }
    EXPECT_EQ(refused.errors[0].pointer, r.at);
    EXPECT_EQ(refused.errors[0].reason.find("Gia Lai"), std::string::npos)
        << refused.errors[0].reason;
  }
  // A further warrant is dropped as before; the first one's country is what is said.
  auto two = parse_json(test::read_file(test::source_dir() / "config/examples/person.wanted.json"));
  json_value second(two["body"]["warrants"][0], two.GetAllocator());
  second["issuingCountry"] = "LA";
  two["body"]["warrants"].PushBack(second, two.GetAllocator());
  const std::string xml = encode_ok(two);
  EXPECT_NE(xml.find("(issuing country: VNM)\""), std::string::npos) << xml;
  EXPECT_EQ(xml.find("(issuing country: LAO)"), std::string::npos) << xml;
}

TEST_F(LaMps, ReceiptIsTheDocumentedLaMpsReceipt) {
  receipt_info info;
  info.message_id = "0b7c8f1e-2d3a-5b4c-8d9e-0f1a2b3c4d5e";
  info.reference = "HP-2569-0042";
  info.accepted_at = "2026-11-20T07:05:31.250Z";
  info.recipient = la_sender;
  const std::string xml = la().encode_receipt(info, context());
  EXPECT_EQ(xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<LaoPoliceMessage version=\"1.3\" type=\"receipt\" "
            "ref=\"0b7c8f1e-2d3a-5b4c-8d9e-0f1a2b3c4d5e\" replyTo=\"HP-2569-0042\" "
            "date=\"20/11/2569\" time=\"14:05\" classification=\"general\">\n"
            "  <Receipt status=\"received\"/>\n"
            "</LaoPoliceMessage>\n");
  // Our own receipt is itself a valid LA-MPS receipt.
  auto d = decode_ok(xml);
  EXPECT_STREQ(d.message["body"]["status"].GetString(), "received");
  expect_canonical(d.message, la_sender);
}

TEST_F(LaMps, ErrorBodyIsEscapedXml) {
  const std::string body = la().encode_error(
      422, "cannot be mapped", {{"/LaoPoliceMessage/Victim/Exploitation[2]", "'<x>&' is bad"}});
  EXPECT_EQ(body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Error>cannot be mapped\n"
            "/LaoPoliceMessage/Victim/Exploitation[2]: '&lt;x&gt;&amp;' is bad</Error>\n");
  const std::string odd = la().encode_error(400, std::string("bad \x01 byte \xFF"), {});
  EXPECT_NE(odd.find("bad ? byte ?"), std::string::npos) << odd;
}

}  // namespace
}  // namespace mxgw::adapters
