// Reloading code tables, mapping files and transliteration rules without a restart: a changed
// table serves its new code after reload(); a broken table, mapping file or rule file is refused
// (named by file and entry) and the old set keeps serving; `mxgw serve` reloads on SIGHUP.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>

#include "gateway/cli/client.hpp"
#include "gateway/common/json.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "tests/integration/child_process.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/store/store_test_helpers.hpp"

namespace mxgw::test {
namespace {

void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(
      from, to,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
}

// The Stung Treng example with its first exploitation code replaced.
std::string example_with_exploitation(const std::string& code) {
  std::string body =
      read_file(source_dir() / "config" / "examples" / "partners" / "kh-stt.victim-referral.json");
  body.replace(body.find("\"SCAM_COMPOUND\""), 15, "\"" + code + "\"");
  return body;
}

// Adds `kh_code` to the KH-CNP codes of `canonical` in the exploitation table under `mappings`.
void add_exploitation_code(const std::filesystem::path& mappings, const std::string& canonical,
                           const std::string& kh_code) {
  const auto file = mappings / "exploitation.json";
  auto doc = json::parse_file(file.string());
  bool added = false;
  for (auto& entry : doc["entries"].GetArray()) {
    if (json::get_string(entry, "code") == canonical) {
      auto& codes = entry["partnerCodes"]["kh-cnp"];
      codes.PushBack(rapidjson::Value(kh_code.c_str(), doc.GetAllocator()), doc.GetAllocator());
      added = true;
    }
  }
  ASSERT_TRUE(added);
  write_file(file, json::to_string(doc));
}

bool names(const std::vector<config::config_problem>& problems, const std::filesystem::path& file,
           const std::string& field = {}) {
  return std::any_of(problems.begin(), problems.end(), [&](const auto& p) {
    return p.file == file.string() && (field.empty() || p.field == field);
  });
}

class Reload : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-sesan","name":"Sesan district, Stung Treng","country":"KH","adapter":"kh-stt"}]})");
    copy_dir(source_dir() / "config" / "mappings", dir_ / "mappings");
    copy_dir(source_dir() / "config" / "adapters", dir_ / "adapters");
    copy_dir(source_dir() / "config" / "translit", dir_ / "translit");
    c.mappings_dir = dir_ / "mappings";
    c.adapters_dir = dir_ / "adapters";
    c.translit_dir = dir_ / "translit";
    c.delivery.enabled = false;
  }

  int post_stt(const std::string& body) {
    return post(partner_client("kh-sesan"), body, "/v1/inbound/kh-stt").status;
  }
};

TEST_F(Reload, AChangedTableServesItsNewCodeAfterReload) {
  EXPECT_EQ(post_stt(example_with_exploitation("DEBT_BONDAGE")), 422);
  add_exploitation_code(dir_ / "mappings", "forced-labour", "DEBT_BONDAGE");
  EXPECT_EQ(post_stt(example_with_exploitation("DEBT_BONDAGE")), 422) << "not before reload";
  const auto problems = gateway_->reload();
  ASSERT_TRUE(problems.empty()) << problems.front().file << ": " << problems.front().reason;
  EXPECT_EQ(post_stt(example_with_exploitation("DEBT_BONDAGE")), 200);
  EXPECT_NE(log_text().find("config.reloaded"), std::string::npos);
  // On the record, with what was loaded (the listener's one CRL file; deliveries are off here).
  stop();
  store::test_helpers::raw_db db(config_.store.path);
  const std::string entry =
      db.text("SELECT entry FROM audit WHERE event = 'config.reloaded' AND actor = 'gateway:mxgw'");
  EXPECT_NE(entry.find(R"("crls":"1","connectionsClosed":"0")"), std::string::npos) << entry;
  EXPECT_NE(entry.find(R"("mappingFiles":")"), std::string::npos) << entry;
}

// Translation provenance: every accepted message's audit entry names the set of code tables,
// transliteration rules and mapping files that translated it, and `translation.loaded` records
// what the name stands for (each table's version, each file's digest) at start and whenever a
// reload changes it; a reload that changes nothing records no new set.
TEST_F(Reload, EachMessageNamesTheTablesAndFilesThatTranslatedIt) {
  ASSERT_EQ(post_stt(example_with_exploitation("SCAM_COMPOUND")), 200);
  // A new edition of the exploitation table: one more partner code, a new version.
  add_exploitation_code(dir_ / "mappings", "forced-labour", "DEBT_BONDAGE");
  {
    const auto file = dir_ / "mappings" / "exploitation.json";
    auto doc = json::parse_file(file.string());
    doc["version"].SetString("2027-01-01", doc.GetAllocator());
    write_file(file, json::to_string(doc));
  }
  ASSERT_TRUE(gateway_->reload().empty());
  ASSERT_TRUE(gateway_->reload().empty());  // nothing changed since: no new set on the record
  std::string second = example_with_exploitation("DEBT_BONDAGE");
  second.replace(second.find("STT-2569-000045"), 15, "STT-2569-000046");  // another message
  ASSERT_EQ(post_stt(second), 200);
  stop();

  store::test_helpers::raw_db db(config_.store.path);
  const auto lines = [&db](const std::string& sql) {
    std::vector<std::string> out;
    for (const auto& line : lines_of(db.text("SELECT group_concat(v, char(10)) FROM (" + sql + ")"))) {
      out.push_back(line);
    }
    return out;
  };
  const auto loaded = lines(
      "SELECT json_extract(entry, '$.details.translation') AS v FROM audit "
      "WHERE event = 'translation.loaded' ORDER BY seq");
  ASSERT_EQ(loaded.size(), 2U);
  EXPECT_NE(loaded[0], loaded[1]);
  EXPECT_EQ(loaded[0].rfind("tr-", 0), 0U) << loaded[0];
  const auto used = lines(
      "SELECT json_extract(entry, '$.details.translation') AS v FROM audit "
      "WHERE event = 'message.accepted' ORDER BY seq");
  ASSERT_EQ(used.size(), 2U);
  EXPECT_EQ(used[0], loaded[0]);  // before the reload
  EXPECT_EQ(used[1], loaded[1]);  // after it
  const auto sets = lines(
      "SELECT json_extract(entry, '$.details.set') AS v FROM audit "
      "WHERE event = 'translation.loaded' ORDER BY seq");
  ASSERT_EQ(sets.size(), 2U);
  rapidjson::Document before, after;
  before.Parse(sets[0].c_str());
  after.Parse(sets[1].c_str());
  ASSERT_TRUE(before.IsObject() && after.IsObject()) << sets[0];
  EXPECT_STREQ(before["tables"]["exploitation"].GetString(), "2026-11-01");
  EXPECT_STREQ(after["tables"]["exploitation"].GetString(), "2027-01-01");
  EXPECT_STREQ(before["tables"]["region"].GetString(), after["tables"]["region"].GetString());
  EXPECT_STRNE(before["files"]["mappings/exploitation.json"].GetString(),
               after["files"]["mappings/exploitation.json"].GetString());
  EXPECT_STREQ(before["files"]["adapters/kh-stt.json"].GetString(),
               after["files"]["adapters/kh-stt.json"].GetString());
  EXPECT_TRUE(before["files"].HasMember("translit/Khmr-Latn.txt"));
  // The reload's own entry names the set it put in force.
  EXPECT_EQ(lines("SELECT json_extract(entry, '$.details.translation') AS v FROM audit "
                  "WHERE event = 'config.reloaded' ORDER BY seq"),
            (std::vector<std::string>{loaded[1], loaded[1]}));
}

TEST_F(Reload, ABrokenTableIsRefusedAndTheOldTablesStillServe) {
  add_exploitation_code(dir_ / "mappings", "forced-labour", "DEBT_BONDAGE");
  write_file(dir_ / "mappings" / "sex.json", "{\"table\": \"sex\", ");
  const auto problems = gateway_->reload();
  ASSERT_FALSE(problems.empty());
  EXPECT_TRUE(names(problems, dir_ / "mappings" / "sex.json"));
  // Nothing changed: the new code is still unknown, the old ones still work.
  EXPECT_EQ(post_stt(example_with_exploitation("DEBT_BONDAGE")), 422);
  EXPECT_EQ(post_stt(example_with_exploitation("SCAM_COMPOUND")), 200);
  const auto log = log_text();
  EXPECT_NE(log.find("config.reload_refused"), std::string::npos);
  EXPECT_NE(log.find("sex.json"), std::string::npos);
  EXPECT_EQ(log.find("config.reloaded"), std::string::npos);
  stop();
  store::test_helpers::raw_db db(config_.store.path);
  EXPECT_EQ(db.text("SELECT group_concat(event, ' ') FROM audit WHERE event LIKE 'config.%'"),
            "config.reload_refused");
  EXPECT_NE(db.text("SELECT entry FROM audit WHERE event = 'config.reload_refused'")
                .find(R"("details":{"problems":")"),
            std::string::npos);
}

TEST_F(Reload, AMappingFileChangeTakesEffectAndABrokenOneIsRefusedByEntry) {
  // Rename `story_en` to `story` in the mapping.
  const auto file = dir_ / "adapters" / "kh-stt.json";
  const std::string original = read_file(file);
  std::string renamed = original;
  renamed.replace(renamed.find("\"/story_en\""), 11, "\"/story\"");
  write_file(file, renamed);
  ASSERT_TRUE(gateway_->reload().empty());
  const std::string example = example_with_exploitation("SCAM_COMPOUND");
  EXPECT_EQ(post_stt(example), 422);  // story_en is no longer a field
  std::string story = example;
  story.replace(story.find("\"story_en\""), 10, "\"story\"");
  EXPECT_EQ(post_stt(story), 200);

  // An unknown table in the mapping: refused by file and entry, the renamed mapping stays.
  std::string broken = renamed;
  broken.replace(broken.find("\"classification\""), 16, "\"secrecy-levels\"");
  write_file(file, broken);
  const auto problems = gateway_->reload();
  EXPECT_TRUE(names(problems, file, "/fields/1/table")) << problems.front().field;
  story.replace(story.find("STT-2569-000045"), 15, "STT-2569-000046");
  EXPECT_EQ(post_stt(story), 200);

  // A new mapping file needs a restart (partners.json was checked against the old set).
  write_file(file, renamed);
  auto extra = rapidjson::Document();
  extra.Parse(renamed.c_str());
  extra["id"].SetString("kh-extra");
  write_file(dir_ / "adapters" / "kh-extra.json", json::to_string(extra));
  const auto added = gateway_->reload();
  EXPECT_TRUE(names(added, dir_ / "adapters" / "kh-extra.json", "/id"));
}

TEST_F(Reload, ABrokenRuleFileIsRefusedNamingFileAndLine) {
  write_file(dir_ / "translit" / "Laoo-Latn.txt", "ກ > k ;\n$nothing > x ;\n");
  const auto problems = gateway_->reload();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir_ / "translit" / "Laoo-Latn.txt").string());
  EXPECT_EQ(problems[0].field, "line 2, column 1");
  EXPECT_EQ(post_stt(example_with_exploitation("SCAM_COMPOUND")), 200);
}

// --- the real process, SIGHUP ------------------------------------------------------------------

TEST(ReloadProcess, SighupReloadsTablesAndRefusesABrokenOne) {
  temp_dir dir;
  identity::certs_init({.dir = dir / "certs"});
  identity::certs_issue_partner(dir / "certs", "kh-sesan", dir / "certs" / "kh-sesan");
  write_file(dir / "partners.json", R"({"partners":[
    {"id":"kh-sesan","name":"Sesan district","country":"KH","adapter":"kh-stt"}]})");
  copy_dir(source_dir() / "config" / "mappings", dir / "mappings");
  write_file(dir / "gateway.json", R"({
    "threads": 2,
    "listener": {"address": "127.0.0.1", "port": 0,
      "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
              "partner_ca": ["certs/ca.pem"], "crl": ["certs/crl.pem"]}},
    "store": {"path": "var/mxgw.db"},
    "delivery": {"enabled": false},
    "partners": "partners.json",
    "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                       R"(",
    "mappings_dir": "mappings",
    "adapters_dir": ")" + (source_dir() / "config" / "adapters").string() +
                                       R"(",
    "translit_dir": ")" + (source_dir() / "config" / "translit").string() +
                                       R"("})");

  child_process gateway(
      {mxgw_binary().string(), "serve", "--config", (dir / "gateway.json").string()});
  const std::string started = gateway.wait_for_line("gateway.started");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(started, match, std::regex(R"(127\.0\.0\.1:([0-9]+))"))) << started;
  const auto port = static_cast<std::uint16_t>(std::stoi(match[1]));
  const cli::client_tls tls{dir / "certs" / "ca.pem", dir / "certs" / "kh-sesan.pem",
                            dir / "certs" / "kh-sesan.key"};
  const auto post = [&](const std::string& body) {
    return cli::https_request("localhost", port, tls, "POST", "/v1/inbound/kh-stt", body,
                              "application/json")
        .status;
  };
  EXPECT_EQ(post(example_with_exploitation("DEBT_BONDAGE")), 422);

  add_exploitation_code(dir / "mappings", "forced-labour", "DEBT_BONDAGE");
  gateway.signal(SIGHUP);
  EXPECT_FALSE(gateway.wait_for_line("config.reloaded").empty());
  EXPECT_EQ(post(example_with_exploitation("DEBT_BONDAGE")), 200);

  write_file(dir / "mappings" / "needs.json", "not json");
  gateway.signal(SIGHUP);
  const auto refused = gateway.wait_for_line("config.reload_refused");
  EXPECT_NE(refused.find("needs.json"), std::string::npos) << refused;
  std::string other = example_with_exploitation("DEBT_BONDAGE");
  other.replace(other.find("STT-2569-000045"), 15, "STT-2569-000046");
  EXPECT_EQ(post(other), 200);  // the reloaded (good) tables still serve

  gateway.signal(SIGTERM);
  EXPECT_EQ(gateway.wait(), 0);
}

}  // namespace
}  // namespace mxgw::test
