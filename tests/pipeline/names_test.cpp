// Names across scripts: NFC, ICAO Latin, Khmer and Lao rule files, comparison key, and adding a
// gateway transliteration to canonical persons.
#include "gateway/pipeline/names.hpp"

#include <gtest/gtest.h>

#include "gateway/common/json.hpp"
#include "tests/pipeline/shipped_translit.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {
namespace {

TEST(Names, DecomposedInputBecomesComposed) {
  const std::string decomposed = "Ha\xCC\x80 No\xCC\xA3i";  // a + U+0300, o + U+0323
  EXPECT_FALSE(is_nfc(decomposed));
  EXPECT_EQ(to_nfc(decomposed), "H\xC3\xA0 N\xE1\xBB\x8Di");  // Hà Nội
  EXPECT_TRUE(is_nfc(to_nfc(decomposed)));
  EXPECT_TRUE(is_nfc("plain ASCII"));
  EXPECT_EQ(to_nfc("Hà Nội"), "Hà Nội");
}

// The ASCII fast path reads eight bytes at a time and then the rest one by one: a decomposed
// letter is found wherever it falls, in a whole word or in the tail.
TEST(Names, ADecomposedLetterIsFoundAtAnyPlaceInALongString) {
  const std::string mark = "e\xCC\x81";  // e + U+0301
  for (std::size_t before = 0; before <= 17; ++before) {
    for (std::size_t after : {0U, 1U, 7U, 8U, 9U}) {
      const std::string text = std::string(before, 'a') + mark + std::string(after, 'b');
      EXPECT_FALSE(is_nfc(text)) << before << " " << after;
      EXPECT_TRUE(is_nfc(to_nfc(text))) << before << " " << after;
      EXPECT_TRUE(is_nfc(std::string(before + after + 1, 'c'))) << before << " " << after;
    }
  }
}

TEST(Names, NormaliseStringsRewritesEveryStringAndPointsAtTheFirstBadOne) {
  rapidjson::Document doc;
  doc.Parse(R"({"a": ["ok", "Ha\u0300"], "e\u0301": {"x": "fine"}})");
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(first_non_nfc(doc), std::optional<std::string>("/a/1"));
  EXPECT_EQ(normalise_strings(doc, doc.GetAllocator()), 2u);
  EXPECT_EQ(first_non_nfc(doc), std::nullopt);
  EXPECT_EQ(json::to_string(doc), "{\"a\":[\"ok\",\"Hà\"],\"é\":{\"x\":\"fine\"}}");
}

TEST(Names, TheFirstBadStringsPointerEscapesNamesAndNamesAMemberItself) {
  rapidjson::Document doc;
  doc.Parse(R"({"fine": [1, {"x": "ok"}], "x/y~z": {"ok": ["a", "Ha\u0300"]}})");
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(first_non_nfc(doc), std::optional<std::string>("/x~1y~0z/ok/1"));
  EXPECT_EQ(first_non_nfc(doc, "/body"), std::optional<std::string>("/body/x~1y~0z/ok/1"));
  doc.Parse(R"({"k": [{"fine": 1}, {"e\u0301": 1}]})");
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(first_non_nfc(doc), std::optional<std::string>("/k/1/e\xCC\x81"));
}

TEST(Names, VietnameseToIcaoLatin) {
  EXPECT_EQ(icao_latin("Đặng Thị Ngọc Hân"), "DANG THI NGOC HAN");
  EXPECT_EQ(icao_latin("đoàn  Văn   Đức"), "DOAN VAN DUC");
  EXPECT_EQ(icao_latin("Nguyễn Thị Bích Phượng"), "NGUYEN THI BICH PHUONG");
  EXPECT_EQ(icao_latin("Trần Thị Thu Hà"), "TRAN THI THU HA");
  // Decomposed input gives the same result.
  EXPECT_EQ(icao_latin(to_nfc("D\xC6\xB0\xCC\x9Bo\xCC\x9B\xCC\x80ng")), icao_latin("Dường"));
  EXPECT_EQ(icao_latin("Gößmann Øre"), "GOSSMANN OERE");
}

TEST(Names, IcaoLatinIsIdempotent) {
  for (const char* name : {"Đặng Thị Ngọc Hân", "Sômphon", "Houaphanh"}) {
    const auto once = icao_latin(name);
    EXPECT_EQ(icao_latin(once), once) << name;
  }
}

TEST(Names, PlainLatin) {
  EXPECT_TRUE(is_plain_latin("Sok Chantha"));
  EXPECT_TRUE(is_plain_latin("O'Neil-Smith"));
  EXPECT_FALSE(is_plain_latin("Sômphon"));
  EXPECT_FALSE(is_plain_latin("Đặng"));
  EXPECT_FALSE(is_plain_latin("សុខ"));
}

struct romanisation {
  const char* script;
  const char* text;
  const char* latin;
};

// Expected romanisations after UNGEGN (Khmer) and BGN/PCGN (Lao), without diacritics, ICAO upper
// case; place names as the UNGEGN gazetteers write them.
constexpr romanisation romanisations[] = {
    {"Khmr", "សុខ", "SOK"},
    {"Khmr", "ចាន់ថា", "CHANTHA"},
    {"Khmr", "សុខ ចាន់ថា", "SOK CHANTHA"},
    {"Khmr", "សុភា", "SOPHEA"},
    {"Khmr", "ស្រី", "SREI"},
    {"Khmr", "ហេង", "HENG"},
    {"Khmr", "សំណាង", "SAMNANG"},
    {"Khmr", "ដារ៉ា", "DARA"},
    {"Khmr", "ស៊ុន", "SUN"},
    {"Khmr", "ពិសិដ្ឋ", "PISET"},
    {"Khmr", "សុផល", "SOPHAL"},
    {"Khmr", "កំពត", "KAMPOT"},
    {"Khmr", "ស្ទឹងត្រែង", "STOENGTRAENG"},
    {"Khmr", "ភ្នំពេញ", "PHNUMPENH"},
    {"Laoo", "ສົມພອນ", "SOMPHON"},
    {"Laoo", "ບຸນມີ", "BOUNMI"},
    {"Laoo", "ຄຳ", "KHAM"},
    {"Laoo", "ສີສຸກ", "SISOUK"},
    {"Laoo", "ຈັນ", "CHAN"},
    {"Laoo", "ຫົວພັນ", "HOUAPHAN"},
    {"Laoo", "ວຽງຈັນ", "VIANGCHAN"},
    {"Laoo", "ຫຼວງພະບາງ", "LOUANGPHABANG"},
    {"Laoo", "ສະຫວັນນະເຂດ", "SAVANNAKHET"},
    {"Laoo", "ຈຳປາສັກ", "CHAMPASAK"},
    {"Laoo", "ເມືອງ", "MUANG"},
    {"Laoo", "ແກ້ວ", "KEO"},
    {"Laoo", "ໄຊ", "XAI"},
    {"Laoo", "ເພັດ", "PHET"},
    {"Laoo", "ສົມພອນ ແກ້ວ", "SOMPHON KEO"},
};

TEST(Names, KhmerAndLaoRomanisations) {
  for (const auto& r : romanisations) {
    EXPECT_EQ(shipped().to_latin(r.script, r.text), std::optional<std::string>(r.latin))
        << r.script << " " << r.text;
  }
  EXPECT_EQ(shipped().scripts(), (std::vector<std::string>{"Khmr", "Laoo"}));
  EXPECT_EQ(shipped().to_latin("Thai", "สมชาย"), std::nullopt);
}

TEST(Names, TransliterationIsIdempotentOnItsOwnOutput) {
  for (const auto& r : romanisations) {
    const auto latin = shipped().to_latin(r.script, r.text);
    ASSERT_TRUE(latin);
    EXPECT_EQ(shipped().to_latin(r.script, *latin), latin) << r.text;
  }
}

TEST(Names, ComparisonKeyEquatesTheRegionsSpellings) {
  EXPECT_EQ(comparison_key("Houaphanh"), comparison_key("Houaphan"));
  EXPECT_EQ(comparison_key("Somphone"), comparison_key("Sômphon"));
  EXPECT_EQ(comparison_key("Bounmy"), comparison_key("Bounmi"));
  EXPECT_EQ(comparison_key("Louang  Phabang"), comparison_key("luang-phabang"));
  EXPECT_EQ(comparison_key("Đặng Thị Ngọc Hân"), comparison_key("DANG THI NGOC HAN"));
  EXPECT_EQ(comparison_key("Phommachanh"), comparison_key("Phomachan"));
  // Lao script meets a partner's French-era spelling through the transliteration.
  EXPECT_EQ(comparison_key(*shipped().to_latin("Laoo", "ຫົວພັນ")), comparison_key("Houaphanh"));
  EXPECT_EQ(comparison_key(*shipped().to_latin("Laoo", "ສົມພອນ")), comparison_key("Somphone"));
  // Khmer too: the rules write ូ as OU (KUMROU), the partner wrote KUMRU.
  EXPECT_EQ(comparison_key(*shipped().to_latin("Khmr", "គំរូ")), comparison_key("Kumru"));
  // Where they must stay apart.
  EXPECT_NE(comparison_key("Sok"), comparison_key("Sak"));
  EXPECT_NE(comparison_key("Chan"), comparison_key("Chanthy"));
  EXPECT_NE(comparison_key("Lee"), comparison_key("Le"));  // short words keep their final E
  EXPECT_EQ(comparison_key("  "), "");
}

TEST(Names, ComparisonKeySeparatesWordsAtUnicodeSpacesAndPunctuation) {
  EXPECT_EQ(comparison_key("Thị\u00A0Hoa"), "THI HOA");                  // a no-break space
  EXPECT_EQ(comparison_key("N\u2019Guyen"), comparison_key("N'Guyen"));  // a curly apostrophe
  EXPECT_EQ(comparison_key("Louang\u2013Phabang"), comparison_key("Louang Phabang"));  // en dash
  EXPECT_EQ(comparison_key("\u00D0\u1EB7ng"), comparison_key("Đặng"));  // eth typed for Đ
  EXPECT_EQ(icao_latin("\u00F0o\u00E0n"), "DOAN");
  // Letters of other scripts are kept.
  EXPECT_EQ(comparison_key("ស\u00A0ខ"), "ស ខ");
  EXPECT_NE(comparison_key("Сок"), comparison_key("Сак"));
}

TEST(Names, BadRuleFileIsAStartUpErrorNamingFileAndPosition) {
  test::temp_dir dir;
  test::write_file(dir.path() / "Khmr-Latn.txt", "# fine\nក > k ;\n");
  test::write_file(dir.path() / "Laoo-Latn.txt", "# broken\nກ > k ;\n$undefined > x ;\n");
  test::write_file(dir.path() / "lao.txt", "ກ > k ;\n");
  std::vector<config_problem> problems;
  const auto t = transliterators::load(dir.path(), problems);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].file, (dir.path() / "Laoo-Latn.txt").string());
  EXPECT_EQ(problems[0].field, "line 3, column 1");
  EXPECT_NE(problems[0].reason.find("ICU refuses the rules: U_"), std::string::npos)
      << problems[0].reason;
  EXPECT_EQ(problems[1].file, (dir.path() / "lao.txt").string());
  EXPECT_EQ(t.scripts(), std::vector<std::string>{"Khmr"});

  std::vector<config_problem> missing;
  transliterators::load(dir.path() / "nope", missing);
  ASSERT_EQ(missing.size(), 1u);
}

rapidjson::Document message_with(const char* names_json) {
  rapidjson::Document doc;
  doc.Parse((std::string(R"({"type":"victim.identification","body":{"person":{"names":)") +
             names_json + "}}}")
                .c_str());
  EXPECT_FALSE(doc.HasParseError());
  return doc;
}

TEST(Names, AddsATransliterationWhenThePersonHasNoLatinName) {
  auto doc = message_with(
      R"([{"family":["សុខ"],"given":["ចាន់ថា"],"script":"Khmr","kind":"primary","order":"family-first"}])");
  EXPECT_EQ(add_transliterations(doc, &shipped()), 1u);
  const auto& names = doc["body"]["person"]["names"];
  ASSERT_EQ(names.Size(), 2u);
  EXPECT_EQ(
      json::to_string(names[1]),
      R"({"family":["SOK"],"given":["CHANTHA"],"script":"Latn","kind":"transliteration","order":"family-first"})");
  // Idempotent.
  EXPECT_EQ(add_transliterations(doc, &shipped()), 0u);
  EXPECT_EQ(doc["body"]["person"]["names"].Size(), 2u);
}

TEST(Names, VietnameseWithDiacriticsGetsItsIcaoForm) {
  auto doc = message_with(
      R"([{"family":["Đặng"],"given":["Thị","Ngọc","Hân"],"script":"Latn","kind":"primary"}])");
  EXPECT_EQ(add_transliterations(doc, nullptr), 1u);
  EXPECT_EQ(
      json::to_string(doc["body"]["person"]["names"][1]),
      R"({"family":["DANG"],"given":["THI","NGOC","HAN"],"script":"Latn","kind":"transliteration"})");
}

TEST(Names, APartnersLatinSpellingIsNeverReplacedNorSupplemented) {
  const char* names =
      R"([{"family":["ສົມພອນ"],"script":"Laoo","kind":"primary"},{"family":["Somphone"],"script":"Latn","kind":"primary"}])";
  auto doc = message_with(names);
  EXPECT_EQ(add_transliterations(doc, &shipped()), 0u);
  EXPECT_EQ(json::to_string(doc["body"]["person"]["names"]),
            json::to_string(message_with(names)["body"]["person"]["names"]));
}

TEST(Names, NoRulesForTheScriptAddsNothing) {
  auto doc = message_with(R"([{"given":["สมชาย"],"script":"Thai","kind":"primary"}])");
  EXPECT_EQ(add_transliterations(doc, &shipped()), 0u);
  auto lao = message_with(R"([{"given":["ສົມພອນ"],"script":"Laoo","kind":"primary"}])");
  EXPECT_EQ(add_transliterations(lao, nullptr), 0u);
}

}  // namespace
}  // namespace mxgw::pipeline
