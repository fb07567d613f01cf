// Statistical facts: what facts_of takes from each message type, the age band and minor rules at
// their edges, the region's current unit, and odd input that must neither throw nor leak.
#include "gateway/pipeline/facts.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "tests/pipeline/document_edit.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {
namespace {

using test::source_dir;

std::filesystem::path examples_dir() {
  return source_dir() / "config" / "examples";
}

rapidjson::Document example(const std::string& type) {
  return json::parse_file((examples_dir() / (type + ".json")).string());
}

using test::set_json;

void erase(rapidjson::Document& doc, const std::string& pointer) {
  rapidjson::Pointer(pointer.c_str()).Erase(doc);
}

class Facts : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<config_problem> problems;
    tables_ = code_tables::load(source_dir() / "config" / "mappings", problems);
    ASSERT_TRUE(problems.empty());
  }

  static std::string facts(const rapidjson::Value& message, std::string_view sender = "vn-gialai") {
    return facts_of(message, sender, tables_);
  }

  // The victim example with `person` members replaced by `edits` ({} members merged; a null
  // member erases it), created at `created`.
  static std::string victim_facts(const std::string& edits,
                                  const std::string& created = "2026-11-21T02:42:10Z") {
    auto doc = example("victim.identification");
    erase(doc, "/body/person/birthDate");
    erase(doc, "/body/person/minor");
    set_json(doc, "/created", "\"" + created + "\"");
    rapidjson::Document edit;
    EXPECT_FALSE(edit.Parse(edits.c_str()).HasParseError()) << edits;
    for (auto& m : edit.GetObject()) {
      const std::string at = "/body/person/" + std::string(m.name.GetString());
      if (m.value.IsNull()) {
        erase(doc, at);
      } else {
        set_json(doc, at, json::to_string(m.value));
      }
    }
    return facts(doc);
  }

  // The "age" and "minor" members of victim_facts(edits, created), as JSON text ("" when absent).
  static std::pair<std::string, std::string> age_and_minor(
      const std::string& edits, const std::string& created = "2026-11-21T02:42:10Z") {
    rapidjson::Document doc;
    doc.Parse(victim_facts(edits, created).c_str());
    auto text = [&](const char* name) {
      auto it = doc.FindMember(name);
      return it == doc.MemberEnd() ? std::string() : json::to_string(it->value);
    };
    return {text("age"), text("minor")};
  }

  static inline code_tables tables_;
};

TEST_F(Facts, EachExampleMessage) {
  // The refs: the first 16 hex digits of SHA-256("vn-gialai\n" + the example's ref).
  const std::map<std::string, std::string> expected = {
      {"victim.identification",
       R"({"ref":"3ec15e3ef1378f35","sex":"F","age":"24--26","minor":false,)"
       R"("nationalities":["KH"],"exploitation":["forced-labour"],"region":"KH-16",)"
       R"("status":"identified"})"},
      {"person.wanted", R"({"ref":"d4bbd142c69c88e8","sex":"M","nationalities":["VN"],)"
                        R"("requestedAction":"locate-and-arrest"})"},
      {"hotline.tip", R"({"channel":"hotline-111","urgency":"immediate","reporterType":"family",)"
                      R"("exploitation":["forced-criminality"],"possibleVictims":1})"},
      {"verification.request",
       R"({"purpose":"nationality","urgency":"high","deadline":"2026-12-05"})"},
      {"verification.result",
       R"({"result":"confirmed","inReplyTo":"1b6d4e8a-3f27-4c90-8e15-a9c2d7f0b364"})"},
      {"case.status", R"({"status":"repatriated","about":"3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17"})"},
      {"receipt", "{}"},
  };
  std::size_t seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples_dir())) {
    if (entry.path().extension() != ".json") {
      continue;
    }
    const std::string type = entry.path().stem().string();
    SCOPED_TRACE(type);
    ++seen;
    auto it = expected.find(type);
    ASSERT_NE(it, expected.end()) << "a new example needs its expected facts here";
    EXPECT_EQ(facts(example(type)), it->second);
  }
  EXPECT_EQ(seen, expected.size());
}

TEST_F(Facts, AVerificationRequestNamesItsRecipientsWhenGiven) {
  const auto request = example("verification.request");
  const std::vector<std::string> recipients = {"kh-stungtreng", "kh-ratanakiri", "kh-stungtreng"};
  EXPECT_EQ(facts_of(request, "vn-gialai", tables_, &recipients),
            R"({"purpose":"nationality","urgency":"high","deadline":"2026-12-05",)"
            R"("to":["kh-ratanakiri","kh-stungtreng"]})");
  const std::vector<std::string> none;
  EXPECT_EQ(facts_of(request, "vn-gialai", tables_, &none),
            R"({"purpose":"nationality","urgency":"high","deadline":"2026-12-05","to":[]})")
      << "routed nowhere: nobody's answer counts";
  // Only a request's facts name recipients.
  EXPECT_EQ(facts_of(example("hotline.tip"), "vn-gialai", tables_, &recipients),
            facts(example("hotline.tip")));
}

TEST_F(Facts, FactsNeverHoldTheReferenceOrIdentifyingValues) {
  for (const std::string type : {"victim.identification", "person.wanted", "hotline.tip"}) {
    SCOPED_TRACE(type);
    const auto doc = example(type);
    const std::string out = facts(doc);
    for (const char* name : {"id", "ref", "caseRef", "created"}) {
      const std::string_view value = json::get_string(doc, name);
      if (!value.empty()) {
        EXPECT_EQ(out.find(value), std::string::npos) << name;
      }
    }
    EXPECT_EQ(out.find("KUMRU"), std::string::npos);
    EXPECT_EQ(out.find("2001-03"), std::string::npos) << "no birth date";
  }
}

TEST_F(Facts, RefIsPerSenderAndReference) {
  const auto doc = example("victim.identification");
  EXPECT_NE(facts(doc, "vn-gialai").find(R"("ref":"3ec15e3ef1378f35")"), std::string::npos);
  EXPECT_NE(facts(doc, "kh-ratanakiri").find(R"("ref":"5d35953d7ceb0aaa")"), std::string::npos)
      << "the authenticated sender, not the message member, keys the count";

  auto without = example("victim.identification");
  erase(without, "/ref");
  EXPECT_EQ(facts(without).find("\"ref\""), std::string::npos);
  set_json(without, "/ref", R"("")");
  EXPECT_EQ(facts(without).find("\"ref\""), std::string::npos) << "an empty ref is no ref";
  set_json(without, "/ref", "42");
  EXPECT_EQ(facts(without).find("\"ref\""), std::string::npos);
}

TEST_F(Facts, AgeBandEdges) {
  const std::vector<std::pair<int, std::string_view>> cases = {
      {0, "0--8"},    {8, "0--8"},    {9, "9--17"},   {17, "9--17"},  {18, "18--20"},
      {20, "18--20"}, {21, "21--23"}, {23, "21--23"}, {24, "24--26"}, {26, "24--26"},
      {27, "27--29"}, {29, "27--29"}, {30, "30--38"}, {38, "30--38"}, {39, "39--47"},
      {47, "39--47"}, {48, "48+"},    {120, "48+"},
  };
  for (const auto& [years, band] : cases) {
    EXPECT_EQ(age_band(years), band) << years;
  }
  EXPECT_EQ(age_band(-1), "");
}

TEST_F(Facts, AgeFromAFullBirthDateAtTheDayCreated) {
  // created 2026-11-21.
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008-11-21"})"),
            std::make_pair(std::string(R"("18--20")"), std::string("false")))
      << "18 on the day";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008-11-22"})"),
            std::make_pair(std::string(R"("9--17")"), std::string("true")))
      << "18 tomorrow";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "1978-11-21"})").first, R"("48+")");
  EXPECT_EQ(age_and_minor(R"({"birthDate": "1978-11-22"})").first, R"("39--47")");
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2026-11-21"})"),
            std::make_pair(std::string(R"("0--8")"), std::string("true")))
      << "born that day";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008-11-21"})", "2026-11-20T23:59:59Z").first,
            R"("9--17")")
      << "the UTC day of created counts";
}

TEST_F(Facts, AFutureCreatedDoesNotAgeAChild) {
  // A victim who turns 18 on 2030-01-01, in a message that claims to be created in 2031 and is
  // accepted on 2026-11-21: counted as the child she is when it is accepted.
  auto doc = example("victim.identification");
  erase(doc, "/body/person/minor");
  set_json(doc, "/body/person/birthDate", R"("2012-01-01")");
  set_json(doc, "/created", R"("2031-06-01T00:00:00Z")");
  const auto accepted = parse_rfc3339("2026-11-21T02:42:10Z");
  rapidjson::Document facts_doc;
  facts_doc.Parse(facts_of(doc, "vn-gialai", tables_, nullptr, accepted).c_str());
  ASSERT_TRUE(facts_doc.IsObject());
  EXPECT_EQ(json::to_string(facts_doc["age"]), R"("9--17")");
  EXPECT_TRUE(facts_doc["minor"].GetBool());
  // Without the time of judgement (a caller that has none) the age stays at `created`.
  facts_doc.Parse(facts_of(doc, "vn-gialai", tables_).c_str());
  EXPECT_FALSE(facts_doc["minor"].GetBool());
  // An earlier `created` is kept: judged at the earlier of the two.
  set_json(doc, "/created", R"("2026-11-20T00:00:00Z")");
  facts_doc.Parse(
      facts_of(doc, "vn-gialai", tables_, nullptr, parse_rfc3339("2040-01-01T00:00:00Z")).c_str());
  EXPECT_TRUE(facts_doc["minor"].GetBool());
}

TEST_F(Facts, PartialBirthDateStraddlingABandHasNoAge) {
  // created 2026-11-21: born in 2008 is 17 or 18, in 2007 18 or 19.
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008"})"), std::make_pair(std::string(), std::string()))
      << "neither age nor minor can be told";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008-11"})"),
            std::make_pair(std::string(), std::string()))
      << "born 2008-11-01 is 18, born 2008-11-30 is 17";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008-10"})"),
            std::make_pair(std::string(R"("18--20")"), std::string("false")));
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2007"})"),
            std::make_pair(std::string(R"("18--20")"), std::string("false")));
  EXPECT_EQ(age_and_minor(R"({"birthDate": "1997"})"),
            std::make_pair(std::string(R"("27--29")"), std::string("false")))
      << "28 or 29: one band";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "1996"})").first, "")
      << "29 or 30 straddles 27--29 and 30--38";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008", "minor": true})").second, "true")
      << "the sender's mark decides when the dates cannot";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2026"})"),
            std::make_pair(std::string(R"("0--8")"), std::string("true")))
      << "a year that may end after created: born by then, so 0 at the youngest";
}

TEST_F(Facts, LeapDayBirthdayCountsOnTheFirstOfMarch) {
  const std::string born = R"({"birthDate": "2008-02-29"})";
  EXPECT_EQ(age_and_minor(born, "2026-02-28T23:59:59Z"),
            std::make_pair(std::string(R"("9--17")"), std::string("true")));
  EXPECT_EQ(age_and_minor(born, "2026-03-01T00:00:00Z"),
            std::make_pair(std::string(R"("18--20")"), std::string("false")));
  EXPECT_EQ(age_and_minor(born, "2028-02-29T00:00:00Z").first, R"("18--20")")
      << "20 in a leap year";
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2008-02"})", "2026-02-28T12:00:00Z").first, "")
      << "born 2008-02-01 is 18, born 2008-02-29 is 17";
}

TEST_F(Facts, BirthDateAfterCreatedOrUnreadableGivesNoAge) {
  for (const std::string birth :
       {"2027-01-01", "2026-11-22", "2027", "2001-13", "2001-02-30", "01-03-2001", "2001x03", ""}) {
    SCOPED_TRACE(birth);
    const std::string edit = R"({"birthDate": ")" + birth + R"("})";
    EXPECT_EQ(age_and_minor(edit), std::make_pair(std::string(), std::string()));
    EXPECT_EQ(age_and_minor(R"({"birthDate": ")" + birth + R"(", "minor": false})").second, "false")
        << "only the sender's mark is left";
    EXPECT_EQ(
        age_and_minor(R"({"birthDate": ")" + birth + R"(", "ageEstimate": {"min": 20, "max": 22}})")
            .first,
        "")
        << "an unusable birth date does not fall back to the estimate";
  }
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2001-03-01"})", "not a time"),
            std::make_pair(std::string(), std::string()))
      << "no day to count from";
}

TEST_F(Facts, AgeFromTheEstimate) {
  using result = std::pair<std::string, std::string>;
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 15, "max": 16}})"),
            result(R"("9--17")", "true"));
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 16, "max": 19}})"), result("", ""));
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 16, "max": 19}, "minor": false})"),
            result("", "false"));
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 18, "max": 20}})"),
            result(R"("18--20")", "false"));
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 50}})"), result(R"("48+")", "false"))
      << "no upper bound: the open band";
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 40}})"), result("", "false"));
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"max": 8}})"), result(R"("0--8")", "true"))
      << "no lower bound: from 0";
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"max": 12}})"), result("", "true"));
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 20, "max": 10}})"), result("", ""))
      << "min above max tells nothing";
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": "20", "max": 22.5}})"), result("", ""))
      << "non-integers are left out";
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {}})"), result("", ""));
  EXPECT_EQ(age_and_minor(R"({"birthDate": "2001-03-01", "ageEstimate": {"min": 1, "max": 2}})"),
            result(R"("24--26")", "false"))
      << "the birth date comes first";
}

TEST_F(Facts, MinorTrueFalseOrUnknown) {
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"max": 17}, "minor": false})").second, "true")
      << "the oldest possible age decides over the mark";
  EXPECT_EQ(age_and_minor(R"({"ageEstimate": {"min": 18}, "minor": true})").second, "false")
      << "the youngest possible age decides over the mark";
  EXPECT_EQ(age_and_minor(R"({"minor": true})").second, "true");
  EXPECT_EQ(age_and_minor(R"({"minor": false})").second, "false");
  EXPECT_EQ(age_and_minor("{}").second, "") << "unknown: absent";
  EXPECT_EQ(age_and_minor(R"({"minor": "yes"})").second, "") << "not a boolean";
}

TEST_F(Facts, RegionIsTheCurrentUnit) {
  auto region = [&](const std::string& code, const code_tables& tables) {
    auto doc = example("victim.identification");
    set_json(doc, "/body/person/homeRegion", R"({"code": ")" + code + R"("})");
    rapidjson::Document out;
    out.Parse(facts_of(doc, "vn-gialai", tables).c_str());
    return std::string(json::get_string(out, "region"));
  };
  EXPECT_EQ(region("VN-31", tables_), "VN-30") << "Binh Dinh merged into Gia Lai";
  EXPECT_EQ(region("VN-30", tables_), "VN-30");
  EXPECT_EQ(region("LA-HO", tables_), "LA-HO");
  EXPECT_EQ(region("XX-99", tables_), "XX-99") << "a code the table does not know stays";
  EXPECT_EQ(region("VN-31", code_tables{}), "VN-31") << "no region table";

  auto doc = example("victim.identification");
  erase(doc, "/body/person/homeRegion");
  EXPECT_EQ(facts(doc).find("region"), std::string::npos);
}

TEST_F(Facts, WrongMemberTypesAreLeftOut) {
  auto doc = example("victim.identification");
  set_json(doc, "/body/person/sex", "5");
  set_json(doc, "/body/person/nationalities", R"("KH")");
  set_json(doc, "/body/person/homeRegion", R"("KH-16")");
  set_json(doc, "/body/person/birthDate", "20010301");
  set_json(doc, "/body/person/minor", "null");
  set_json(doc, "/body/exploitation", R"({"type": "sexual"})");
  set_json(doc, "/body/status", "[]");
  EXPECT_EQ(facts(doc), R"({"ref":"3ec15e3ef1378f35"})");

  set_json(doc, "/body/person/nationalities", R"(["KH", 5, null, "VN"])");
  EXPECT_EQ(facts(doc), R"({"ref":"3ec15e3ef1378f35","nationalities":["KH","VN"]})")
      << "the string items are kept";

  set_json(doc, "/body/person", R"("someone")");
  EXPECT_EQ(facts(doc), R"({"ref":"3ec15e3ef1378f35"})");
  set_json(doc, "/body", "[1, 2]");
  EXPECT_EQ(facts(doc), R"({"ref":"3ec15e3ef1378f35"})");

  auto tip = example("hotline.tip");
  set_json(tip, "/body/subjects", R"({"role": "possible-victim"})");
  set_json(tip, "/body/channel", "111");
  set_json(tip, "/body/suspectedExploitation", R"("forced-criminality")");
  EXPECT_EQ(facts(tip), R"({"urgency":"immediate","reporterType":"family","possibleVictims":0})");
  set_json(tip, "/body/subjects", R"([{"role": "possible-victim"}, "x", {"role": 1},
                                      {"role": "possible-victim"}, {"role": "witness"}])");
  EXPECT_NE(facts(tip).find(R"("possibleVictims":2)"), std::string::npos);

  auto result = example("verification.result");
  set_json(result, "/inReplyTo", R"({"id": "x"})");
  EXPECT_EQ(facts(result), R"({"result":"confirmed"})");
  auto status = example("case.status");
  set_json(status, "/body/about", R"("3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17")");
  EXPECT_EQ(facts(status), R"({"status":"repatriated"})");

  for (const char* odd :
       {"null", "[]", "\"victim.identification\"", "{}", R"({"type": 7})",
        R"({"type": "victim.identification"})", R"({"type": "hotline.tip", "body": null})"}) {
    SCOPED_TRACE(odd);
    rapidjson::Document message;
    message.Parse(odd);
    std::string out;
    EXPECT_NO_THROW(out = facts(message));
    rapidjson::Document parsed;
    EXPECT_FALSE(parsed.Parse(out.c_str()).HasParseError());
    EXPECT_TRUE(parsed.IsObject());
  }
}

TEST_F(Facts, IdsAreLowerCased) {
  auto result = example("verification.result");
  set_json(result, "/inReplyTo", R"("1B6D4E8A-3F27-4C90-8E15-A9C2D7F0B364")");
  EXPECT_EQ(facts(result),
            R"({"result":"confirmed","inReplyTo":"1b6d4e8a-3f27-4c90-8e15-a9c2d7f0b364"})");
  auto status = example("case.status");
  set_json(status, "/body/about/messageId", R"("3F2B8C1E-7D4A-4E2B-9C61-0A5D2E8F4B17")");
  set_json(status, "/body/status", R"("withdrawn")");
  EXPECT_EQ(facts(status),
            R"({"status":"withdrawn","about":"3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17"})");
  erase(status, "/body/about/messageId");
  set_json(status, "/body/about/externalRefs", R"([{"system": "interpol", "id": "2026/1"}])");
  EXPECT_EQ(facts(status), R"({"status":"withdrawn"})") << "only a message id is kept";
}

TEST_F(Facts, ReceiptsAndUnknownTypesHaveNoFacts) {
  EXPECT_EQ(facts(example("receipt")), "{}");
  auto doc = example("victim.identification");
  set_json(doc, "/type", R"("victim.update")");
  EXPECT_EQ(facts(doc), "{}");
}

}  // namespace
}  // namespace mxgw::pipeline
