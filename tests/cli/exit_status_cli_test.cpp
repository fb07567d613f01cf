// The exit statuses of `mxgw` run as a real process, which monitoring scripts rely on: a
// configuration with problems is refused (2) before a store command reads or records anything.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/support/mxgw_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

class ExitStatusCli : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    store::generate_key_file(dir_ / "k1.hex");
    // A store sealed at rest with one message, and a configuration that names only the store
    // (as an inspector's copy would): enough for the store commands.
    auto ring = std::make_shared<const store::key_ring>(
        store::key_ring::load({{"k1", dir_ / "k1.hex", ""}}, "k1"));
    store::sqlite_options options;
    options.path = dir_ / "var" / "mxgw.db";
    std::filesystem::create_directories(dir_ / "var");
    auto sealed = store::encrypt_at_rest(store::open_sqlite_store(options), ring);
    store::message_record r{"00000000-0000-4000-8000-000000000001",
                            "vn-gialai",
                            "hotline.tip",
                            "2026-11-22T04:38:47Z",
                            "sha",
                            "{}"};
    r.facts = R"({"channel":"hotline-111","urgency":"immediate","exploitation":[]})";
    std::promise<store::accept_outcome> p;
    sealed->accept(std::move(r), [&p](store::accept_result a) { p.set_value(a.outcome); });
    EXPECT_EQ(p.get_future().get(), store::accept_outcome::stored);
    sealed->stop();
    write_store_config("good.json", "encryption");
  }

  // A configuration naming the store, with store.encryption under the member `encryption`.
  std::filesystem::path write_store_config(const std::string& name, const std::string& encryption,
                                           const std::string& key_file = "k1.hex") {
    write_file(dir_ / name, R"({"store": {"path": "var/mxgw.db", ")" + encryption +
                                R"(": {"active": "k1", "keys": [{"id": "k1", "file": ")" +
                                key_file + R"("}]}}})");
    return dir_ / name;
  }

  run_result mxgw(const std::vector<std::string>& args) { return run_mxgw(args, dir_.path()); }

  std::string config(const std::string& name = "good.json") const { return (dir_ / name).string(); }

  // The audit entries on the chain (every command on the store records itself first).
  std::size_t audit_entries() {
    const auto r = mxgw({"audit", "query", "--config", config(), "--limit", "0"});
    EXPECT_EQ(r.exit_status, 0) << r.err;
    return lines_of(r.out).size();
  }

  std::vector<std::string> admin_files() const {
    return {"--cert", (dir_ / "certs" / "admin.pem").string(),
            "--key",  (dir_ / "certs" / "admin.key").string(),
            "--ca",   (dir_ / "certs" / "ca.pem").string()};
  }

  temp_dir dir_;
};

TEST_F(ExitStatusCli, AConfigurationWithProblemsStopsEveryStoreCommandBeforeAnythingIsRead) {
  // The good configuration works: the report counts the tip with its facts opened.
  auto r = mxgw({"report", "--config", config(), "--from", "2000-01-01", "--to", "2100-12-31"});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("\"withoutFacts\": 0,"), std::string::npos) << r.out;
  const auto before = audit_entries();

  // store.encryption misspelled: without it every fact would be unreadable and the figures wrong.
  const auto typo = write_store_config("typo.json", "encyption").string();
  const std::vector<std::vector<std::string>> commands = {
      {"report", "--config", typo, "--from", "2000-01-01", "--to", "2100-12-31"},
      {"register", "--config", typo},
      {"audit", "query", "--config", typo},
      {"audit", "verify", "--config", typo},
      {"queue", "dead", "--config", typo},
      {"queue", "replay", "--config", typo, "--message", "00000000-0000-4000-8000-000000000001",
       "--recipient", "kh-sesan"},
  };
  for (const auto& args : commands) {
    r = mxgw(args);
    EXPECT_EQ(r.exit_status, 2) << args[0] << " " << args[1] << "\n" << r.err;
    EXPECT_EQ(r.out, "") << args[0] << " " << args[1];
    EXPECT_NE(r.err.find("the configuration has problems"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("/store/encyption: is not a known setting"), std::string::npos) << r.err;
  }
  // A misspelled setting outside the store stops them too; a part they do not read being
  // absent (no listener, no partners here) does not.
  write_file(dir_ / "typo-elsewhere.json", R"({"store": {"path": "var/mxgw.db",
      "encryption": {"active": "k1", "keys": [{"id": "k1", "file": "k1.hex"}]}},
      "lgo": {"level": "debug"}})");
  r = mxgw({"register", "--config", config("typo-elsewhere.json")});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_NE(r.err.find("/lgo: is not a known setting"), std::string::npos) << r.err;

  // A key that cannot be loaded is a configuration problem too (as `config check` says), not a
  // failed store.
  write_file(dir_ / "short.hex", "0123");
  const auto bad_key = write_store_config("bad-key.json", "encryption", "short.hex").string();
  r = mxgw({"report", "--config", bad_key, "--from", "2000-01-01", "--to", "2100-12-31"});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("/store/encryption: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("0123"), std::string::npos) << r.err;  // never the key's bytes

  // Nothing was read or recorded by any of the refused commands.
  EXPECT_EQ(audit_entries(), before);
}

TEST_F(ExitStatusCli, TranslateRefusesAConfigurationWithAMisspelledSetting) {
  // translit_dir misspelled: names would go out without their transliteration.
  const auto source = (source_dir() / "config").string();
  write_file(dir_ / "translate.json", R"({"schema_dir": ")" + source + R"(/schema",
      "mappings_dir": ")" + source + R"(/mappings", "translit_dri": ")" +
                                          source + R"(/translit"})");
  const auto r =
      mxgw({"translate", "--from", "mx", "--to", "mx", "--config", config("translate.json"),
            (source_dir() / "config" / "examples" / "hotline.tip.json").string()});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("/translit_dri: is not a known setting"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mxgw::test
