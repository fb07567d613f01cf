// Loading code tables and schemas (bad files are reported, not crashed on), and the repository's
// tables and schemas checked against each other so that they cannot drift apart.
#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/schema_set.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {
namespace {

using test::source_dir;
using test::temp_dir;
using test::write_file;

std::filesystem::path mappings_dir() {
  return source_dir() / "config" / "mappings";
}
std::filesystem::path schema_dir() {
  return source_dir() / "config" / "schema";
}

std::string describe(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += "\n  " + p.file + ": " + p.field + ": " + p.reason;
  }
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// The problems about `file` whose field is `field`.
std::vector<config_problem> problems_at(const std::vector<config_problem>& problems,
                                        const std::filesystem::path& file,
                                        const std::string& field) {
  std::vector<config_problem> out;
  for (const auto& p : problems) {
    if (p.file == file.string() && p.field == field) {
      out.push_back(p);
    }
  }
  return out;
}

// --- code_tables::load --------------------------------------------------------------------------

class CodeTablesLoad : public ::testing::Test {
 protected:
  code_tables load() { return code_tables::load(dir_.path(), problems_); }

  temp_dir dir_;
  std::vector<config_problem> problems_;
};

TEST_F(CodeTablesLoad, GoodTableLoads) {
  write_file(dir_ / "colour.json", R"({"table": "colour", "version": "1", "entries": [
      {"code": "red"}, {"code": "crimson", "validTo": "2020-01-01", "successors": ["red"]}]})");
  write_file(dir_ / "README.md", "not a table, and not read");
  const auto tables = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(tables.names(), std::vector<std::string>{"colour"});
  EXPECT_TRUE(tables.has("colour", "red"));
  EXPECT_TRUE(tables.has("colour", "crimson"));
  EXPECT_FALSE(tables.has("colour", "blue"));
  EXPECT_FALSE(tables.has("colour", "RED"));
  EXPECT_FALSE(tables.has("shape", "red"));
  ASSERT_NE(tables.find("colour"), nullptr);
  EXPECT_EQ(tables.find("colour")->version, "1");
  EXPECT_EQ(tables.find("colour")->codes.at("crimson"), std::vector<std::string>{"red"});
  EXPECT_EQ(tables.find("shape"), nullptr);
}

TEST_F(CodeTablesLoad, ReverseLookupsFindEveryMatchInFileOrder) {
  write_file(dir_ / "region.json", R"({"table": "region", "version": "1", "entries": [
      {"code": "KH-16", "country": "KH", "partnerCode": 16, "alpha": "RTK",
       "partnerCodes": {"kh-cnp": ["16", "RTK"], "la-mps": ["X"]}},
      {"code": "LA-16", "country": "LA", "partnerCode": 16, "alpha": "RTK"},
      {"code": "KH-19", "country": "KH", "partnerCode": 19, "partnerCodes": {"kh-cnp": ["19"]}},
      {"country": "KH", "partnerCode": 20, "alpha": "NOCODE"}]})");
  const auto tables = load();
  const code_table* t = tables.find("region");
  ASSERT_NE(t, nullptr);
  const auto codes = [](const std::vector<const rapidjson::Value*>& entries) {
    std::vector<std::string> out;
    for (const auto* e : entries) {
      out.emplace_back(json::get_string(*e, "code"));
    }
    return out;
  };
  EXPECT_EQ(codes(t->entries_where("alpha", "RTK")), (std::vector<std::string>{"KH-16", "LA-16"}));
  EXPECT_EQ(codes(t->entries_where("partnerCode", std::int64_t{16})),
            (std::vector<std::string>{"KH-16", "LA-16"}));
  EXPECT_EQ(codes(t->entries_where("partnerCode", std::int64_t{19})),
            std::vector<std::string>{"KH-19"});
  EXPECT_EQ(codes(t->entries_by_partner_code("kh-cnp", "RTK")), std::vector<std::string>{"KH-16"});
  EXPECT_EQ(codes(t->entries_by_partner_code("la-mps", "X")), std::vector<std::string>{"KH-16"});
  // No match: wrong case, a string where the column is a number, another partner's column, and
  // an entry without a code (not a valid entry, so not indexed).
  EXPECT_TRUE(t->entries_where("alpha", "rtk").empty());
  EXPECT_TRUE(t->entries_where("partnerCode", "16").empty());
  EXPECT_TRUE(t->entries_by_partner_code("la-mps", "16").empty());
  EXPECT_TRUE(t->entries_where("alpha", "NOCODE").empty());
  EXPECT_TRUE(t->entries_where("partnerCode", std::int64_t{20}).empty());
}

TEST_F(CodeTablesLoad, DuplicateCodeNamesTheFileAndTheEntry) {
  write_file(dir_ / "colour.json", R"({"table": "colour", "entries": [
      {"code": "red"}, {"code": "blue"}, {"code": "red"}]})");
  load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "colour.json").string());
  EXPECT_EQ(problems_[0].field, "/entries/2/code");
  EXPECT_TRUE(contains(problems_[0].reason, "'red'")) << problems_[0].reason;
}

TEST_F(CodeTablesLoad, UnknownSuccessorNamesTheFileAndTheEntry) {
  write_file(dir_ / "region.json", R"({"table": "region", "entries": [
      {"code": "VN-30"}, {"code": "VN-03", "validTo": "2025-06-30", "successors": ["VN-07"]}]})");
  load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "region.json").string());
  EXPECT_EQ(problems_[0].field, "/entries/1/successors/0");
  EXPECT_TRUE(contains(problems_[0].reason, "'VN-07'")) << problems_[0].reason;
}

TEST_F(CodeTablesLoad, SuccessorListedLaterInTheFileIsKnown) {
  write_file(dir_ / "region.json", R"({"table": "region", "entries": [
      {"code": "VN-03", "successors": ["VN-07"]}, {"code": "VN-07"}]})");
  load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
}

TEST_F(CodeTablesLoad, TwoFilesNamingTheSameTable) {
  write_file(dir_ / "a.json", R"({"table": "sex", "entries": [{"code": "M"}]})");
  write_file(dir_ / "b.json", R"({"table": "sex", "entries": [{"code": "F"}]})");
  const auto tables = load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "b.json").string());
  EXPECT_EQ(problems_[0].field, "/table");
  EXPECT_TRUE(contains(problems_[0].reason, "'sex'")) << problems_[0].reason;
  EXPECT_TRUE(tables.has("sex", "M"));
  EXPECT_FALSE(tables.has("sex", "F")) << "the second file is not merged in";
}

TEST_F(CodeTablesLoad, FileThatIsNotJsonIsNamed) {
  write_file(dir_ / "broken.json", R"({"table": "sex", "entries": [)");
  write_file(dir_ / "good.json", R"({"table": "script", "entries": [{"code": "Latn"}]})");
  const auto tables = load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "broken.json").string());
  EXPECT_TRUE(tables.has("script", "Latn")) << "the other files still load";
}

TEST_F(CodeTablesLoad, DuplicateMemberNamesMakeAFileInvalid) {
  write_file(dir_ / "sex.json", R"({"table": "sex", "table": "other", "entries": []})");
  load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "sex.json").string());
}

TEST_F(CodeTablesLoad, MissingTableNameIsReported) {
  write_file(dir_ / "sex.json", R"({"version": "1", "entries": [{"code": "M"}]})");
  const auto tables = load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "sex.json").string());
  EXPECT_EQ(problems_[0].field, "/table");
  EXPECT_TRUE(tables.names().empty());
}

TEST_F(CodeTablesLoad, TopLevelThatIsNotAnObjectIsReported) {
  write_file(dir_ / "sex.json", R"([{"code": "M"}])");
  load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (dir_ / "sex.json").string());
}

TEST_F(CodeTablesLoad, EntriesMustBeAnArrayAndEveryEntryNeedsACode) {
  write_file(dir_ / "a.json", R"({"table": "a", "entries": {"code": "x"}})");
  write_file(dir_ / "b.json", R"({"table": "b", "entries": [{"code": "x"}, {"label": "y"},
                                                          {"code": 7}]})");
  load();
  EXPECT_EQ(problems_at(problems_, dir_ / "a.json", "/entries").size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_at(problems_, dir_ / "b.json", "/entries/1/code").size(), 1u)
      << describe(problems_);
  EXPECT_EQ(problems_at(problems_, dir_ / "b.json", "/entries/2/code").size(), 1u)
      << describe(problems_);
  EXPECT_EQ(problems_.size(), 3u) << describe(problems_);
}

TEST_F(CodeTablesLoad, MissingDirectoryIsReported) {
  const auto tables = code_tables::load(dir_ / "nowhere", problems_);
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_EQ(problems_[0].file, (dir_ / "nowhere").string());
  EXPECT_TRUE(tables.names().empty());
}

// --- The repository's code tables
// -----------------------------------------------------------------

class RepositoryTables : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tables_ = code_tables::load(mappings_dir(), problems_); }
  static inline code_tables tables_;
  static inline std::vector<config_problem> problems_;
};

TEST_F(RepositoryTables, LoadWithoutProblems) {
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  const auto names = tables_.names();
  for (const char* required : {"country", "region", "language", "script"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end()) << required;
  }
}

TEST_F(RepositoryTables, HoldThePartnersCodes) {
  for (const char* country : {"VN", "KH", "LA", "TH", "CN"}) {
    EXPECT_TRUE(tables_.has("country", country)) << country;
  }
  for (const char* region : {"KH-16", "VN-30", "LA-HO", "KH-19", "LA-HO"}) {
    EXPECT_TRUE(tables_.has("region", region)) << region;
  }
  for (const char* language : {"khm", "vie", "lao", "jra"}) {
    EXPECT_TRUE(tables_.has("language", language)) << language;
  }
  for (const char* script : {"Khmr", "Latn", "Laoo"}) {
    EXPECT_TRUE(tables_.has("script", script)) << script;
  }
  EXPECT_FALSE(tables_.has("country", "XX"));
  EXPECT_FALSE(tables_.has("region", "VN-99"));
  EXPECT_FALSE(tables_.has("language", "xxx"));
}

TEST_F(RepositoryTables, EveryRetiredRegionLeadsToCurrentUnitsOfItsCountry) {
  // The gateway routes an old code by the unit that replaced it, so every code with a validTo
  // needs successors, and following them must end in codes still in force.
  const auto file = json::parse_file((mappings_dir() / "region.json").string());
  std::map<std::string, const rapidjson::Value*> by_code;
  for (const auto& entry : file["entries"].GetArray()) {
    by_code[entry["code"].GetString()] = &entry;
  }
  std::size_t retired = 0;
  for (const auto& [code, entry] : by_code) {
    if (!entry->HasMember("validTo")) {
      continue;
    }
    ++retired;
    SCOPED_TRACE(code);
    ASSERT_TRUE(entry->HasMember("successors") && (*entry)["successors"].IsArray());
    const auto& successors = (*entry)["successors"];
    EXPECT_GT(successors.Size(), 0u);
    for (const auto& successor : successors.GetArray()) {
      std::string current = successor.GetString();
      for (int step = 0;
           step < 10 && by_code.contains(current) && by_code.at(current)->HasMember("validTo");
           ++step) {
        current = (*by_code.at(current))["successors"][0].GetString();
      }
      ASSERT_TRUE(by_code.contains(current)) << "successor " << current << " does not exist";
      EXPECT_FALSE(by_code.at(current)->HasMember("validTo")) << current << " is not in force";
      EXPECT_EQ(current.substr(0, 3), code.substr(0, 3)) << "a successor in another country";
      EXPECT_TRUE(tables_.has("region", current));
    }
    // The loader keeps the same successors.
    ASSERT_NE(tables_.find("region"), nullptr);
    EXPECT_EQ(tables_.find("region")->codes.at(code).size(), successors.Size());
  }
  EXPECT_GT(retired, 0u) << "Vietnam's 2025 merger should appear in the region table";
}

TEST_F(RepositoryTables, RegionTableCountsMatchTheAdministrativeUnits) {
  // Viet Nam: 34 units in force after Resolution 202/2025/QH15 (63 before); Cambodia 25; Laos 18.
  const auto file = json::parse_file((mappings_dir() / "region.json").string());
  std::map<std::string, int> current, retired;
  for (const auto& entry : file["entries"].GetArray()) {
    const std::string country = std::string(entry["code"].GetString()).substr(0, 2);
    ++(entry.HasMember("validTo") ? retired : current)[country];
  }
  EXPECT_EQ(current["VN"], 34);
  EXPECT_EQ(current["VN"] + retired["VN"], 63);
  EXPECT_EQ(current["KH"], 25);
  EXPECT_EQ(current["LA"], 18);
}

// --- schema_set::load -------------------------------------------------------------------------

class SchemaSetLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(schema_ / "body");
    write_file(schema_ / "envelope.json", R"({"type": "object"})");
  }

  schema_set load() { return schema_set::load(schema_, problems_); }

  /// True when some problem names `file` and has every one of `parts` in its reason.
  bool reported(const std::filesystem::path& file, std::initializer_list<std::string> parts) const {
    return std::any_of(problems_.begin(), problems_.end(), [&](const config_problem& p) {
      return p.file == file.string() &&
             std::all_of(parts.begin(), parts.end(),
                         [&](const std::string& part) { return contains(p.reason, part); });
    });
  }

  temp_dir dir_;
  std::filesystem::path schema_ = dir_ / "schema";
  std::vector<config_problem> problems_;
};

TEST_F(SchemaSetLoad, ReferencesAcrossFilesAreResolved) {
  write_file(schema_ / "common.json", R"({"definitions": {
      "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
      "pair": {"type": "array", "items": {"$ref": "#/definitions/code"}}}})");
  write_file(schema_ / "body" / "t.json", R"({"type": "object", "additionalProperties": false,
      "properties": {"p": {"$ref": "common.json#/definitions/pair"}}})");
  const auto set = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(set.types(), std::vector<std::string>{"t"});
  rapidjson::Document good, bad;
  good.Parse(R"({"p": ["VN", "KH"]})");
  bad.Parse(R"({"p": ["VN", "kh"]})");
  std::vector<field_error> errors;
  EXPECT_TRUE(set.validate_body("t", good, errors));
  EXPECT_FALSE(set.validate_body("t", bad, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "/body/p/1");
}

// The envelope check skips the body's contents only while the envelope schema says no more of
// the body than that it is an object; anything more it says is still enforced.
TEST_F(SchemaSetLoad, TheEnvelopeSchemaStillAppliesWhateverItSaysOfTheBody) {
  rapidjson::Document message;
  message.Parse(R"({"type": "t", "body": {"a": 1, "b": 2}})");
  rapidjson::Document not_object;
  not_object.Parse(R"({"type": "t", "body": [1]})");
  const auto check = [&](const std::string& envelope, const rapidjson::Value& doc) {
    write_file(schema_ / "envelope.json", envelope);
    problems_.clear();
    const auto set = load();
    EXPECT_TRUE(problems_.empty()) << describe(problems_);
    std::vector<field_error> errors;
    set.validate_envelope(doc, errors);
    return errors.empty() ? std::string("valid") : errors[0].pointer;
  };
  const std::string plain = R"({"type": "object", "required": ["body"], "properties": {
      "type": {"type": "string"}, "body": {"type": "object", "description": "typed"}}})";
  EXPECT_EQ(check(plain, message), "valid");
  EXPECT_EQ(check(plain, not_object), "/body");
  EXPECT_EQ(check(R"({"type": "object", "properties": {
      "body": {"type": "object", "maxProperties": 1}}})", message), "/body");
  EXPECT_EQ(check(R"({"type": "object", "properties": {
      "body": {"type": "object", "properties": {"a": {"type": "string"}}}}})", message), "/body/a");
  EXPECT_EQ(check(R"({"type": "object", "properties": {"body": {"type": "object"}},
      "patternProperties": {"^bo": {"required": ["c"]}}})", message), "/body");
}

// Patterns are matched by PCRE2 with std::regex's meaning: bytes, `$` only at the very end
// (PCRE2's own `$` also matches before a final newline), the whole value including any NUL.
TEST_F(SchemaSetLoad, PatternsMatchAsECMAScriptOnBytesDoes) {
  write_file(schema_ / "body" / "t.json", R"({"type": "object", "properties": {
      "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
      "ref": {"type": "string", "pattern": "^/[^/]*$"},
      "word": {"type": "string", "pattern": "a.c"},
      "name": {"type": "string", "pattern": "^(?:[A-Z][a-z]+)( [A-Z][a-z]+)*$"}},
      "patternProperties": {"^x-[0-9]+$": {"type": "integer"}}})");
  const auto set = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const auto valid = [&](const std::string& json, std::size_t length = std::string::npos) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), length == std::string::npos ? json.size() : length);
    EXPECT_FALSE(doc.HasParseError()) << json;
    std::vector<field_error> errors;
    return set.validate_body("t", doc, errors);
  };
  EXPECT_TRUE(valid(R"({"code": "VN"})"));
  EXPECT_FALSE(valid(R"({"code": "VN\n"})"));  // PCRE2's default `$` would pass this
  EXPECT_FALSE(valid(R"({"code": "VNM"})"));
  EXPECT_FALSE(valid(R"({"code": "vn"})"));
  EXPECT_FALSE(valid(R"({"code": "V\u0000"})"));
  EXPECT_FALSE(valid(R"({"code": "VN\u0000"})"));  // the NUL and what follows count
  EXPECT_TRUE(valid(R"({"ref": "/body"})"));
  EXPECT_FALSE(valid(R"({"ref": "/body/x"})"));
  EXPECT_TRUE(valid(R"({"ref": "/Trần"})"));     // bytes of any value but '/'
  EXPECT_TRUE(valid(R"({"word": "xxabcxx"})"));  // unanchored: found anywhere
  EXPECT_FALSE(valid(R"({"word": "a\nc"})"));    // '.' is not a line break
  EXPECT_TRUE(valid(R"({"name": "Nguyen Van An"})"));
  EXPECT_FALSE(valid(R"({"name": "Nguyen  Van"})"));
  EXPECT_TRUE(valid(R"({"x-12": 1})"));
  EXPECT_FALSE(valid(R"({"x-12": "1"})"));
  EXPECT_TRUE(valid(R"({"x-12a": "1"})"));  // not a pattern property: anything goes
}

TEST_F(SchemaSetLoad, APatternThatDoesNotCompileIsAProblemNotAMissingCheck) {
  write_file(schema_ / "body" / "t.json", R"({"type": "object", "properties": {
      "code": {"type": "string", "pattern": "^[A-Z{2}$"}}})");
  const auto set = load();
  EXPECT_TRUE(reported(schema_ / "body" / "t.json", {"pattern '^[A-Z{2}$'", "does not compile"}))
      << describe(problems_);
  EXPECT_FALSE(set.has_type("t"));
}

// Schemas are validated from every event-loop thread at once, while a reload compiles others.
TEST_F(SchemaSetLoad, PatternsMatchFromManyThreadsWhileOtherSchemasComeAndGo) {
  write_file(schema_ / "body" / "t.json", R"({"type": "object", "properties": {
      "id": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}$"}}})");
  const auto set = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  rapidjson::Document good, bad;
  good.Parse(R"({"id": "0a1b2c3d-4e5f-6a7b"})");
  bad.Parse(R"({"id": "0a1b2c3d-4e5f-6a7G"})");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::vector<field_error> errors;
        if (!set.validate_body("t", good, errors) || set.validate_body("t", bad, errors)) {
          ++wrong;
        }
      }
    });
  }
  for (int i = 0; i < 20; ++i) {  // schemas with patterns of their own, built and dropped
    std::vector<config_problem> more;
    const auto other = schema_set::load(schema_, more);
    EXPECT_TRUE(other.has_type("t"));
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(SchemaSetLoad, RefToAMissingFileNamesTheFileAndTheRef) {
  write_file(schema_ / "body" / "t.json",
             R"({"type": "object", "properties": {"p": {"$ref": "nope.json#/definitions/x"}}})");
  const auto set = load();
  EXPECT_TRUE(reported(schema_ / "body" / "t.json", {"nope.json#/definitions/x"}))
      << describe(problems_);
  EXPECT_FALSE(set.has_type("t"));
}

TEST_F(SchemaSetLoad, RefToAMissingPointerNamesTheFileAndTheRef) {
  write_file(schema_ / "common.json", R"({"definitions": {"x": {"type": "string"}}})");
  write_file(schema_ / "envelope.json",
             R"({"type": "object", "properties": {"p": {"$ref": "common.json#/definitions/y"}}})");
  write_file(schema_ / "body" / "t.json", R"({"$ref": "#/definitions/missing"})");
  const auto set = load();
  EXPECT_TRUE(reported(schema_ / "envelope.json", {"common.json#/definitions/y"}))
      << describe(problems_);
  EXPECT_TRUE(reported(schema_ / "body" / "t.json", {"#/definitions/missing"}))
      << describe(problems_);
  EXPECT_FALSE(set.has_type("t"));
}

TEST_F(SchemaSetLoad, RefWithAMalformedPointerIsAProblemNotTheWholeFile) {
  // "definitions/x" lacks the leading "/": it must not silently resolve to all of common.json
  // (a schema that accepts anything).
  write_file(schema_ / "common.json", R"({"definitions": {"x": {"type": "string"}}})");
  write_file(schema_ / "body" / "t.json",
             R"({"type": "object", "properties": {"p": {"$ref": "common.json#definitions/x"}}})");
  load();
  EXPECT_TRUE(reported(schema_ / "body" / "t.json", {"common.json#definitions/x"}))
      << describe(problems_);
}

TEST_F(SchemaSetLoad, RefCycleIsAProblemNotACrash) {
  write_file(schema_ / "a.json", R"({"type": "object", "properties": {"b": {"$ref": "b.json"}}})");
  write_file(schema_ / "b.json", R"({"type": "object", "properties": {"a": {"$ref": "a.json"}}})");
  write_file(schema_ / "body" / "t.json", R"({"$ref": "a.json"})");
  write_file(schema_ / "body" / "self.json",
             R"({"definitions": {"d": {"$ref": "#/definitions/d"}}, "$ref": "#/definitions/d"})");
  const auto set = load();
  EXPECT_FALSE(problems_.empty());
  EXPECT_TRUE(std::any_of(problems_.begin(), problems_.end(), [](const config_problem& p) {
    return contains(p.reason, "cycle");
  })) << describe(problems_);
  EXPECT_FALSE(set.has_type("t"));
  EXPECT_FALSE(set.has_type("self"));
}

TEST_F(SchemaSetLoad, RefOutsideTheSchemaDirectoryIsRefused) {
  write_file(dir_ / "outside.json", R"({"definitions": {"x": {"type": "string"}}})");
  write_file(schema_ / "body" / "t.json", R"({"$ref": "../outside.json#/definitions/x"})");
  const auto set = load();
  EXPECT_TRUE(reported(schema_ / "body" / "t.json", {"../outside.json"})) << describe(problems_);
  EXPECT_FALSE(set.has_type("t"));
}

TEST_F(SchemaSetLoad, MissingEnvelopeIsReported) {
  std::filesystem::remove(schema_ / "envelope.json");
  write_file(schema_ / "body" / "t.json", R"({"type": "object"})");
  const auto set = load();
  ASSERT_FALSE(problems_.empty());
  EXPECT_EQ(problems_[0].file, (schema_ / "envelope.json").string()) << describe(problems_);
  EXPECT_EQ(problems_.size(), 1u) << describe(problems_);
  // Without an envelope schema nothing passes.
  rapidjson::Document message;
  message.Parse("{}");
  std::vector<field_error> errors;
  EXPECT_FALSE(set.validate_envelope(message, errors));
  EXPECT_FALSE(errors.empty());
}

TEST_F(SchemaSetLoad, EnvelopeThatIsNotJsonIsReported) {
  write_file(schema_ / "envelope.json", R"({"type": )");
  load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (schema_ / "envelope.json").string());
}

TEST_F(SchemaSetLoad, MissingBodyDirectoryIsReported) {
  std::filesystem::remove_all(schema_ / "body");
  const auto set = load();
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, (schema_ / "body").string());
  EXPECT_TRUE(set.types().empty());
}

TEST_F(SchemaSetLoad, BodyOfATypeWithoutSchemaIsRefused) {
  write_file(schema_ / "body" / "t.json", R"({"type": "object"})");
  const auto set = load();
  rapidjson::Document body;
  body.Parse("{}");
  std::vector<field_error> errors;
  EXPECT_TRUE(set.validate_body("t", body, errors));
  EXPECT_FALSE(set.validate_body("u", body, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "/type");
}

// --- The repository's schemas, and the tables that mirror them
// ------------------------------------

const std::vector<std::string> message_types = {
    "case.status",          "hotline.tip",         "person.wanted",        "receipt",
    "verification.request", "verification.result", "victim.identification"};

TEST(RepositorySchemas, LoadWithoutProblemsWithExactlyTheSevenBodyTypes) {
  std::vector<config_problem> problems;
  const auto set = schema_set::load(schema_dir(), problems);
  EXPECT_TRUE(problems.empty()) << describe(problems);
  EXPECT_EQ(set.types(), message_types);
  for (const auto& type : message_types) {
    EXPECT_TRUE(set.has_type(type)) << type;
  }
  EXPECT_FALSE(set.has_type("common"));
}

TEST(RepositorySchemas, EnvelopeTypeEnumNamesExactlyTheBodySchemas) {
  const auto envelope = json::parse_file((schema_dir() / "envelope.json").string());
  const auto* values = rapidjson::Pointer("/properties/type/enum").Get(envelope);
  ASSERT_NE(values, nullptr);
  std::vector<std::string> types;
  for (const auto& v : values->GetArray()) {
    types.emplace_back(v.GetString());
  }
  std::sort(types.begin(), types.end());
  EXPECT_EQ(types, message_types);
}

/// The string values of the enum at `pointer` in schema file `file` (relative to config/schema).
std::set<std::string> schema_enum(const std::string& file, const std::string& pointer) {
  const auto schema = json::parse_file((schema_dir() / file).string());
  const auto* values = rapidjson::Pointer(pointer.c_str()).Get(schema);
  std::set<std::string> out;
  if (values == nullptr || !values->IsArray()) {
    ADD_FAILURE() << file << "#" << pointer << " is not an enum";
    return out;
  }
  for (const auto& v : values->GetArray()) {
    out.emplace(v.GetString());
  }
  return out;
}

/// The codes of table file `file` (in config/mappings), those with `kind` == `kind` when given.
std::set<std::string> table_codes(const std::string& file, const std::string& kind = {}) {
  const auto table = json::parse_file((mappings_dir() / file).string());
  std::set<std::string> out;
  for (const auto& entry : table["entries"].GetArray()) {
    if (kind.empty() || json::get_string(entry, "kind") == kind) {
      out.emplace(entry["code"].GetString());
    }
  }
  return out;
}

struct mirrored_enum {
  std::string table_file;
  std::string kind;  // entries of this kind only (classification holds two lists)
  std::string schema_file;
  std::string pointer;
};

void PrintTo(const mirrored_enum& m, std::ostream* out) {
  *out << m.table_file << (m.kind.empty() ? "" : " (" + m.kind + ")") << " = " << m.schema_file
       << "#" << m.pointer;
}

class TableMirrorsSchemaEnum : public ::testing::TestWithParam<mirrored_enum> {};

TEST_P(TableMirrorsSchemaEnum, SameCodes) {
  const auto& m = GetParam();
  const auto codes = table_codes(m.table_file, m.kind);
  EXPECT_FALSE(codes.empty());
  EXPECT_EQ(codes, schema_enum(m.schema_file, m.pointer))
      << m.table_file << " and " << m.schema_file << "#" << m.pointer << " have drifted apart";
}

INSTANTIATE_TEST_SUITE_P(
    RepositorySchemas, TableMirrorsSchemaEnum,
    ::testing::Values(
        mirrored_enum{"sex.json", "", "common.json", "/definitions/person/properties/sex/enum"},
        mirrored_enum{"victim-status.json", "", "body/victim.identification.json",
                      "/properties/status/enum"},
        mirrored_enum{"hotline-channel.json", "", "body/hotline.tip.json",
                      "/properties/channel/enum"},
        mirrored_enum{"legal-basis.json", "", "envelope.json", "/properties/legalBasis/enum"},
        mirrored_enum{"purpose.json", "", "common.json", "/definitions/purpose/enum"},
        mirrored_enum{"exploitation.json", "", "common.json", "/definitions/exploitationType/enum"},
        mirrored_enum{"needs.json", "", "body/victim.identification.json",
                      "/properties/needs/items/enum"},
        mirrored_enum{"document-type.json", "", "common.json",
                      "/definitions/document/properties/type/enum"},
        mirrored_enum{"classification.json", "confidentiality", "common.json",
                      "/definitions/handling/properties/confidentiality/enum"},
        mirrored_enum{"classification.json", "handling-code", "common.json",
                      "/definitions/handling/properties/codes/items/enum"}),
    [](const ::testing::TestParamInfo<mirrored_enum>& param_info) {
      std::string name =
          param_info.param.table_file.substr(0, param_info.param.table_file.size() - 5) +
          param_info.param.kind;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(RepositorySchemas, EveryMirroringTableIsChecked) {
  // A new table that mirrors a schema enum must be added to TableMirrorsSchemaEnum; tables of
  // open code lists (checked by the domain rules instead) are listed here.
  const std::set<std::string> mirrored = {"sex",         "victim-status", "hotline-channel",
                                          "legal-basis", "purpose",       "exploitation",
                                          "needs",       "document-type", "classification"};
  const std::set<std::string> open_lists = {"country", "region", "language", "script"};
  std::vector<config_problem> problems;
  const auto tables = code_tables::load(mappings_dir(), problems);
  for (const auto& name : tables.names()) {
    EXPECT_TRUE(mirrored.contains(name) || open_lists.contains(name))
        << "table '" << name << "' is neither mirrored nor a domain-checked list";
  }
}

TEST(RepositorySchemas, TableCodesHaveTheFormTheSchemaRequires) {
  // A code the table knows but the schema's pattern refuses could never be sent.
  const auto common = json::parse_file((schema_dir() / "common.json").string());
  std::vector<config_problem> problems;
  const auto tables = code_tables::load(mappings_dir(), problems);
  for (const auto& [table, definition] :
       std::vector<std::pair<std::string, std::string>>{{"country", "countryCode"},
                                                        {"region", "regionCode"},
                                                        {"language", "languageCode"},
                                                        {"script", "scriptCode"}}) {
    SCOPED_TRACE(table);
    const auto* pattern =
        rapidjson::Pointer(("/definitions/" + definition + "/pattern").c_str()).Get(common);
    const auto* max_length =
        rapidjson::Pointer(("/definitions/" + definition + "/maxLength").c_str()).Get(common);
    ASSERT_NE(pattern, nullptr);
    ASSERT_NE(max_length, nullptr);
    const std::regex form(pattern->GetString());
    const auto* codes = tables.find(table);
    ASSERT_NE(codes, nullptr);
    EXPECT_FALSE(codes->codes.empty());
    for (const auto& [code, successors] : codes->codes) {
      EXPECT_TRUE(std::regex_search(code, form)) << code;
      EXPECT_LE(code.size(), max_length->GetUint()) << code;
    }
  }
}

}  // namespace
}  // namespace mxgw::pipeline
