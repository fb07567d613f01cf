// `mxgw report --config FILE` run as a real process on a store sealed at rest: the period's
// figures from the facts kept with each message (opened with the configured keys), each report on
// the audit chain as cli:<user> before anything is read; small counts withheld when
// --suppress-below asks, with the threshold audited; bad requests refused with exit 2 and nothing
// recorded; facts sealed under a key the configuration lacks counted as without facts, with a
// warning.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "gateway/common/time.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/support/mxgw_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN"}]})");
    store::generate_key_file(dir_ / "k1.hex");
    store::generate_key_file(dir_ / "other.hex");
    write_config("k1.hex");
    // As the gateway stores them: a victim reported twice under one reference (a minor), a tip,
    // and a message from before facts were kept.
    accept_all({
        {"victim.identification",
         R"({"ref":"r1","sex":"F","age":"9--17","minor":true,"nationalities":["KH"],)"
         R"("exploitation":["sexual"],"region":"VN-30","status":"identified"})"},
        {"victim.identification",
         R"({"ref":"r1","sex":"F","age":"9--17","minor":true,"nationalities":["KH"],)"
         R"("exploitation":["sexual"],"region":"VN-30","status":"returned"})"},
        {"hotline.tip",
         R"({"channel":"hotline-111","urgency":"immediate","exploitation":[],"possibleVictims":2})"},
        {"hotline.tip", ""},
    });
    today_ = format_rfc3339_ms(std::chrono::system_clock::now()).substr(0, 10);
  }

  void write_config(const std::string& key_file) {
    write_file(config_file(), R"({
      "listener": {"address": "127.0.0.1", "port": 0,
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"]}},
      "store": {"path": "var/mxgw.db",
                "encryption": {"active": "k1", "keys": [{"id": "k1", "file": ")" +
                                  key_file + R"("}]}},
      "partners": "partners.json",
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                  R"(",
      "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                  R"("})");
  }

  void accept_all(const std::vector<std::pair<std::string, std::string>>& messages) {
    auto ring = std::make_shared<const store::key_ring>(
        store::key_ring::load({{"k1", dir_ / "k1.hex", ""}}, "k1"));
    store::sqlite_options options;
    options.path = dir_ / "var" / "mxgw.db";
    auto sealed = store::encrypt_at_rest(store::open_sqlite_store(options), ring);
    int n = 0;
    for (const auto& [type, facts] : messages) {
      const std::string id = "00000000-0000-4000-8000-00000000000" + std::to_string(++n);
      store::message_record r{id, "vn-gialai", type, "2026-11-22T04:38:47Z", "sha", "{}"};
      r.facts = facts;
      std::promise<store::accept_outcome> p;
      sealed->accept(std::move(r), [&p](store::accept_result a) { p.set_value(a.outcome); });
      ASSERT_EQ(p.get_future().get(), store::accept_outcome::stored);
    }
    sealed->stop();
  }

  run_result report(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"report", "--config", config_file().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_mxgw(args, dir_.path());
  }

  std::size_t audited_reports() {
    const auto r = run_mxgw({"audit", "query", "--config", config_file().string(), "--event",
                             "report.generated", "--limit", "0"},
                            dir_.path());
    EXPECT_EQ(r.exit_status, 0) << r.err;
    return lines_of(r.out).size();
  }

  std::filesystem::path config_file() const { return dir_ / "gateway.json"; }

  temp_dir dir_;
  std::string today_;
};

TEST_F(ReportCli, CountsTheFactsOfThePeriodAndIsAudited) {
  auto r = report({"--from", today_, "--to", today_});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  rapidjson::Document doc;
  doc.Parse(r.out.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.out;
  EXPECT_EQ(doc["messages"]["total"].GetInt(), 4);
  EXPECT_EQ(doc["messages"]["withoutFacts"].GetInt(), 1);
  EXPECT_EQ(doc["victims"]["total"].GetInt(), 1);  // one reference, two messages
  EXPECT_EQ(doc["victims"]["messages"].GetInt(), 2);
  EXPECT_EQ(doc["victims"]["byStatus"]["returned"].GetInt(), 1);  // the last one's
  EXPECT_EQ(doc["victims"]["byMinor"]["yes"].GetInt(), 1);
  EXPECT_EQ(doc["victims"]["byAgeBand"]["9--17"].GetInt(), 1);
  EXPECT_EQ(doc["tips"]["total"].GetInt(), 1);  // the one without facts counts only as a message
  EXPECT_EQ(doc["tips"]["possibleVictims"].GetInt(), 2);

  r = report({"--from", today_, "--to", today_, "--format", "csv"});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("victims,region,VN-30,1\r\n"), std::string::npos) << r.out;

  // Who asked, for which period and format: on the chain, with the operator's name.
  const auto entries = run_mxgw({"audit", "query", "--config", config_file().string(), "--event",
                                 "report.generated", "--limit", "0"},
                                dir_.path());
  const auto lines = lines_of(entries.out);
  ASSERT_EQ(lines.size(), 2U) << entries.out;
  EXPECT_NE(lines[0].find("\"actor\":\"cli:"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"format\":\"csv\""), std::string::npos) << lines[1];
}

TEST_F(ReportCli, BadRequestsAreRefusedAndRecordNothing) {
  const std::vector<std::vector<std::string>> bad = {
      {"--from", "2026-02-29", "--to", "2026-03-01"},           // 2026 is not a leap year
      {"--from", "2026-03-02", "--to", "2026-03-01"},           // reversed
      {"--from", "2026-3-1", "--to", "2026-03-31"},             // not YYYY-MM-DD
      {"--from", "2026-03-01", "--to", "2026-03-31", "--format", "xlsx"},
  };
  for (const auto& args : bad) {
    const auto r = report(args);
    EXPECT_EQ(r.exit_status, 2) << args[1] << " " << r.out;
    EXPECT_EQ(r.err.rfind("report: ", 0), 0U) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Neither or both sources; a store that is not there is not created.
  auto r = run_mxgw({"report", "--from", today_, "--to", today_}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  r = run_mxgw({"report", "--config", config_file().string(), "--admin-url", "https://x:1",
                "--from", today_, "--to", today_},
               dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  std::filesystem::rename(dir_ / "var", dir_ / "elsewhere");
  r = report({"--from", today_, "--to", today_});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("there is no store"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "var" / "mxgw.db"));
  std::filesystem::rename(dir_ / "elsewhere", dir_ / "var");
  EXPECT_EQ(audited_reports(), 0U);
}

TEST_F(ReportCli, WithholdsCountsBelowTheThresholdAndAuditsIt) {
  auto r = report({"--from", today_, "--to", today_, "--suppress-below", "2"});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  rapidjson::Document doc;
  doc.Parse(r.out.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.out;
  EXPECT_EQ(doc["messages"]["total"].GetInt(), 4);
  EXPECT_TRUE(doc["messages"]["withoutFacts"].IsNull()) << r.out;
  EXPECT_TRUE(doc["victims"]["total"].IsNull()) << r.out;
  EXPECT_EQ(doc["victims"]["messages"].GetInt(), 2);
  EXPECT_TRUE(doc["tips"]["total"].IsNull()) << r.out;
  EXPECT_EQ(doc["tips"]["possibleVictims"].GetInt(), 2);
  EXPECT_EQ(doc["suppression"]["below"].GetInt(), 2);

  r = report({"--from", today_, "--to", today_, "--format", "csv", "--suppress-below", "3"});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("\r\nvictims,region,VN-30,<3\r\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\r\nsuppression,below,,3\r\n"), std::string::npos) << r.out;

  const auto entries = run_mxgw({"audit", "query", "--config", config_file().string(), "--event",
                                 "report.generated", "--limit", "0"},
                                dir_.path());
  const auto lines = lines_of(entries.out);
  ASSERT_EQ(lines.size(), 2U) << entries.out;
  EXPECT_NE(lines[0].find("\"format\":\"json\",\"suppressBelow\":\"2\""), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("\"suppressBelow\":\"3\""), std::string::npos) << lines[1];
}

TEST_F(ReportCli, ABadSuppressionThresholdIsRefusedAndRecordsNothing) {
  for (const std::string bad : {"0", "1", "1001", "-3", "abc", "5x", "", " 5", "2.5"}) {
    const auto r = report({"--from", today_, "--to", today_, "--suppress-below", bad});
    EXPECT_EQ(r.exit_status, 2) << bad;
    EXPECT_EQ(r.err, "report: --suppress-below is a whole number from 2 to 1000\n") << bad;
    EXPECT_EQ(r.out, "") << bad;
  }
  EXPECT_EQ(audited_reports(), 0U);
}

TEST_F(ReportCli, FactsUnderAKeyTheConfigurationLacksCountAsWithoutFactsWithAWarning) {
  write_config("other.hex");  // the same key id, other bytes: nothing sealed before opens
  const auto r = report({"--from", today_, "--to", today_});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.err.find("the facts of 3 message(s) do not open"), std::string::npos) << r.err;
  rapidjson::Document doc;
  doc.Parse(r.out.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.out;
  EXPECT_EQ(doc["messages"]["withoutFacts"].GetInt(), 4);
  EXPECT_EQ(doc["victims"]["total"].GetInt(), 0);
}

}  // namespace
}  // namespace mxgw::test
