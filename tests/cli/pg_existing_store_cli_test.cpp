// The commands on an existing gateway's store, run as real processes against PostgreSQL: a
// schema with no mxgw store in it (misspelt, dropped, or never made) is refused with exit status
// 2 and a sentence naming the schema and the database, and is still absent afterwards: opening
// the store would have created it and verified, counted or recorded into an empty chain. A store
// newer than this build is refused unchanged. Skipped, visibly, only when MXGW_TEST_PG_DSN is
// unset (scripts/pg_test_cluster.sh and scripts/test.sh set it).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/pg_store.hpp"
#include "gateway/store/sealed.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/support/mxgw_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

using store::test_helpers::pg_exec;
using store::test_helpers::pg_schema_for;
using store::test_helpers::pg_test_dsn;

// Given in store.password_env; trust authentication never asks for it, so no message can quote
// it unless mxgw itself does.
constexpr const char* password_variable = "MXGW_TEST_PG_EXISTING_PASSWORD";
constexpr const char* password = "NOT-A-REAL-PASSWORD-7f3a";

class PgExistingStoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (pg_test_dsn().empty()) {
      GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/pg_test_cluster.sh starts a cluster)";
    }
    ::setenv(password_variable, password, 1);
    identity::certs_init({.dir = dir_ / "certs"});
    store::generate_key_file(dir_ / "k1.hex");
    store::generate_key_file(dir_ / "match.hex");
    write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN"}]})");
    present_ = pg_schema_for(dir_ / "present");
    missing_ = pg_schema_for(dir_ / "missing");
    empty_ = pg_schema_for(dir_ / "empty");
    // A real store with one audit entry: the commands work on it (the control).
    store::postgres_options options;
    options.dsn = pg_test_dsn();
    options.schema = present_;
    auto opened = store::open_postgres_store(options);
    std::promise<bool> appended;
    opened->append_audit({{.event = "config.reloaded", .actor = "gateway:test"}},
                         [&appended](bool ok) { appended.set_value(ok); });
    EXPECT_TRUE(appended.get_future().get());
    opened->stop();
  }

  void TearDown() override {
    if (!pg_test_dsn().empty()) {
      for (const auto& schema : {present_, missing_, empty_}) {
        if (!schema.empty()) {
          pg_exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
        }
      }
    }
    ::unsetenv(password_variable);
  }

  // A whole gateway.json (keys rekey and persons rekey read all of it) whose store is the
  // PostgreSQL schema `schema` of the database `dsn` names.
  std::string config_for(const std::string& schema, const std::string& dsn = pg_test_dsn()) {
    const auto file = dir_ / (schema + ".json");
    write_file(file, R"({
      "listener": {"address": "127.0.0.1", "port": 0,
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"]}},
      "store": {"kind": "postgres", "dsn": ")" +
                         dsn + R"(", "schema": ")" + schema + R"(",
                "password_env": ")" +
                         password_variable +
                         R"(",
                "encryption": {"active": "k1", "keys": [{"id": "k1", "file": "k1.hex"}]}},
      "persons": {"match_key": {"file": "match.hex"}},
      "partners": "partners.json",
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                         R"(",
      "mappings_dir": ")" +
                         (source_dir() / "config" / "mappings").string() + R"("})");
    return file.string();
  }

  run_result mxgw(const std::vector<std::string>& args) { return run_mxgw(args, dir_.path()); }

  static bool schema_exists(const std::string& schema) {
    return pg_exec("SELECT count(*) FROM pg_namespace WHERE nspname = '" + schema + "'") != "0";
  }

  // Tables (and anything else) in `schema`.
  static std::string relations_in(const std::string& schema) {
    return pg_exec(
        "SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = '" +
        schema + "'");
  }

  std::string no_store_in(const std::string& schema) const {
    return "there is no mxgw store in schema \"" + schema + "\" of database \"postgres\"";
  }

  std::string certificate() const { return (dir_ / "certs" / "server.pem").string(); }

  temp_dir dir_;
  std::string present_;
  std::string missing_;
  std::string empty_;
};

TEST_F(PgExistingStoreCli, AuditVerifyOfASchemaWithNoStoreIsRefusedAndCreatesNothing) {
  // The control: the real store verifies.
  auto r =
      mxgw({"audit", "verify", "--config", config_for(present_), "--certificate", certificate()});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("audit log intact: 1 entries"), std::string::npos) << r.out;

  // A misspelt or dropped schema: "cannot check", never "intact, 0 entries".
  ASSERT_FALSE(schema_exists(missing_));
  r = mxgw({"audit", "verify", "--config", config_for(missing_), "--certificate", certificate()});
  EXPECT_EQ(r.exit_status, 2) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("audit verify: " + no_store_in(missing_)), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(password), std::string::npos) << r.err;
  EXPECT_FALSE(schema_exists(missing_)) << "audit verify created the schema";

  // The schema exists but holds no mxgw tables (they were dropped): none are made.
  pg_exec("CREATE SCHEMA " + empty_);
  r = mxgw({"audit", "verify", "--config", config_for(empty_), "--certificate", certificate()});
  EXPECT_EQ(r.exit_status, 2) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(no_store_in(empty_)), std::string::npos) << r.err;
  EXPECT_EQ(relations_in(empty_), "0") << "audit verify created tables";

  // A database that does not exist: cannot check (and nothing can be created there).
  r = mxgw({"audit", "verify", "--config",
            config_for(missing_, pg_test_dsn() + " dbname=mxgw_no_such_database"), "--certificate",
            certificate()});
  EXPECT_EQ(r.exit_status, 2) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("mxgw_no_such_database"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(password), std::string::npos) << r.err;
  EXPECT_FALSE(schema_exists(missing_));
}

TEST_F(PgExistingStoreCli, EveryOtherCommandOnAnExistingStoreIsRefusedAndCreatesNothing) {
  const std::vector<std::vector<std::string>> commands = {
      {"audit", "query", "--config", config_for(missing_), "--limit", "0"},
      {"queue", "dead", "--config", config_for(missing_)},
      {"queue", "replay", "--config", config_for(missing_), "--message",
       "00000000-0000-4000-8000-000000000001", "--recipient", "kh-sesan"},
      {"register", "--config", config_for(missing_), "--from", "2026-01", "--to", "2026-12"},
      {"report", "--config", config_for(missing_), "--from", "2026-01-01", "--to", "2026-12-31"},
      {"keys", "rekey", "--config", config_for(missing_)},
      {"persons", "rekey", "--config", config_for(missing_)},
  };
  // The control: each of them works on the real store (replay finds no dead letter: 1).
  for (const auto& args : commands) {
    std::vector<std::string> control = args;
    control[args[0] == "register" || args[0] == "report" ? 2 : 3] = config_for(present_);
    const auto r = mxgw(control);
    EXPECT_EQ(r.exit_status, args[1] == "replay" ? 1 : 0) << args[0] << " " << args[1] << r.err;
  }
  for (const auto& args : commands) {
    const auto r = mxgw(args);
    EXPECT_EQ(r.exit_status, 2) << args[0] << " " << args[1] << "\n" << r.out << r.err;
    EXPECT_EQ(r.out, "") << args[0] << " " << args[1];
    EXPECT_NE(r.err.find(no_store_in(missing_)), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(password), std::string::npos) << r.err;
    EXPECT_FALSE(schema_exists(missing_)) << args[0] << " " << args[1] << " created the schema";
  }
}

TEST_F(PgExistingStoreCli, AStoreNewerThanThisBuildIsRefusedUnchanged) {
  const std::string newer = std::to_string(store::postgres_schema_version + 1);
  pg_exec("UPDATE " + present_ + ".mxgw_schema SET version = " + newer);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"audit", "verify", "--config", config_for(present_),
                                 "--certificate", certificate()},
        std::vector<std::string>{"audit", "query", "--config", config_for(present_)},
        std::vector<std::string>{"queue", "dead", "--config", config_for(present_)}}) {
    const auto r = mxgw(args);
    EXPECT_EQ(r.exit_status, 2) << args[0] << " " << args[1] << "\n" << r.out << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("newer than this build of mxgw knows"), std::string::npos) << r.err;
  }
  EXPECT_EQ(pg_exec("SELECT max(version) FROM " + present_ + ".mxgw_schema"), newer);
  EXPECT_EQ(pg_exec("SELECT count(*) FROM " + present_ + ".audit"), "1");
}

}  // namespace
}  // namespace mxgw::test
