// The exit statuses of `mxgw` run as a real process, which monitoring scripts rely on: a
// configuration with problems is refused (2) before a store command reads or records anything; a
// file that cannot be read is bad input (2), never a verdict (`audit verify`'s 1 is "not intact");
// a result that cannot be written to standard output is a failure, not an exit status 0; bad
// usage (a port out of range, a negative --limit, a reversed period, a bad partner id, an admin
// URL without its certificates) is refused with 2.
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

TEST_F(ExitStatusCli, AFileThatCannotBeReadIsNamedAndIsBadInputNotAVerdict) {
  std::filesystem::create_directories(dir_ / "a-directory");
  const auto directory = (dir_ / "a-directory").string();
  // 1 would mean "not intact": tampering. A directory given as an anchor cannot be checked.
  auto r = mxgw({"audit", "verify", "--config", config(), "--anchor", directory});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.err, "audit verify: " + directory + ": cannot be read: it is a directory\n");
  EXPECT_EQ(r.out, "");

  r = mxgw({"translate", "--from", "mx", "--to", "mx", "--config",
            (source_dir() / "config" / "gateway.json").string(), directory});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.err, "translate: " + directory + ": cannot be read: it is a directory\n");

  // The message is read before anything is sent (nothing listens on port 1).
  auto send = std::vector<std::string>{"send", "--url", "https://127.0.0.1:1/v1/messages"};
  const auto files = admin_files();
  send.insert(send.end(), files.begin(), files.end());
  send.push_back(directory);
  r = mxgw(send);
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.err, "send: " + directory + ": cannot be read: it is a directory\n");
  EXPECT_EQ(r.err.find("basic_filebuf"), std::string::npos) << r.err;

  send.back() = (dir_ / "absent.json").string();
  r = mxgw(send);
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_NE(r.err.find("absent.json: cannot be read: No such file or directory"), std::string::npos)
      << r.err;
}

TEST_F(ExitStatusCli, AResultThatCannotBeWrittenToStandardOutputIsAFailure) {
  const auto report =
      run_mxgw({"report", "--config", config(), "--from", "2000-01-01", "--to", "2100-12-31"},
               dir_.path(), "/dev/full");
  EXPECT_EQ(report.exit_status, 1) << report.err;
  EXPECT_NE(report.err.find("report: the result could not be written to standard output"),
            std::string::npos)
      << report.err;

  const auto register_ = run_mxgw({"register", "--config", config()}, dir_.path(), "/dev/full");
  EXPECT_EQ(register_.exit_status, 1) << register_.err;
  EXPECT_NE(register_.err.find("register: the result could not be written"), std::string::npos)
      << register_.err;

  // audit verify: the chain is intact, but 1 would say it is not: "cannot check" (2).
  ASSERT_EQ(mxgw({"audit", "verify", "--config", config()}).exit_status, 0);
  const auto verify = run_mxgw({"audit", "verify", "--config", config()}, dir_.path(), "/dev/full");
  EXPECT_EQ(verify.exit_status, 2) << verify.err;
  EXPECT_NE(verify.err.find("audit verify: the result could not be written"), std::string::npos)
      << verify.err;
}

TEST_F(ExitStatusCli, AnAdminOrPartnerUrlThatCannotBeUsedIsBadUsage) {
  const auto files = admin_files();
  const auto with_files = [&files](std::vector<std::string> args) {
    args.insert(args.end(), files.begin(), files.end());
    return args;
  };
  // --admin-url without its certificates: bad usage, nothing is asked.
  auto r = mxgw({"report", "--admin-url", "https://127.0.0.1:1", "--from", "2026-01-01", "--to",
                 "2026-01-31"});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.err, "report: --cert, --key and --ca are needed with --admin-url\n");
  r = mxgw({"queue", "depth", "--admin-url", "https://127.0.0.1:1"});
  EXPECT_EQ(r.exit_status, 2) << r.err;

  // A port past 65535 is not some other port.
  r = mxgw(with_files({"report", "--admin-url", "https://127.0.0.1:99999", "--from", "2026-01-01",
                       "--to", "2026-01-31"}));
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.err, "report: --admin-url its port must be a number from 1 to 65535\n");
  r = mxgw(with_files({"send", "--url", "https://127.0.0.1:99999/v1/messages", "--method", "GET"}));
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.err, "send: --url its port must be a number from 1 to 65535\n");
  r = mxgw(with_files({"send", "--url", "https://127.0.0.1:0/v1/messages", "--method", "GET"}));
  EXPECT_EQ(r.exit_status, 2) << r.err;
}

TEST_F(ExitStatusCli, BadUsageIsRefusedWithTwo) {
  // A negative --limit is not "everything".
  auto r = mxgw({"audit", "query", "--config", config(), "--limit", "-1"});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("--limit"), std::string::npos) << r.err;

  // A reversed period is refused, as `report` refuses one.
  r = mxgw({"register", "--config", config(), "--from", "2026-12", "--to", "2026-01"});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "register: --from 2026-12 is after --to 2026-01\n");
  r = mxgw({"register", "--config", config(), "--from", "2026-01", "--to", "2026-01"});
  EXPECT_EQ(r.exit_status, 0) << r.err;

  // A partner id that cannot be one; no certificate is written.
  r = mxgw({"certs", "issue", "--dir", (dir_ / "certs").string(), "--partner", "bad id", "--out",
            (dir_ / "bad").string()});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_NE(r.err.find("certs issue: --partner is a partner id"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad.pem"));
}

}  // namespace
}  // namespace mxgw::test
