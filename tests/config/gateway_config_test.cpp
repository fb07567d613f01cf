// gateway.json loading: paths resolved against the file, safe defaults, and every problem reported
// with its file and JSON Pointer.
#include "gateway/config/gateway_config.hpp"

#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::config {
namespace {

using test::temp_dir;
using test::write_file;

// The smallest complete configuration; every path is relative to etc/, where the file lives.
constexpr const char* minimal_config = R"({
  "listener": {
    "tls": {
      "certificate": "../certs/server.pem",
      "private_key": "../certs/server.key",
      "partner_ca": ["../certs/ca.pem"]
    }
  },
  "store": {"path": "../var/mxgw.db"},
  "partners": "partners.json",
  "schema_dir": "schema",
  "mappings_dir": "mappings"
})";

std::string describe(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += "\n  " + p.file + ": " + p.field + ": " + p.reason;
  }
  return out;
}

class GatewayConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    // Everything the minimal configuration names exists, except the store file (created later).
    for (const char* d : {"etc", "etc/schema", "etc/mappings", "certs", "var"}) {
      std::filesystem::create_directories(dir_ / d);
    }
    for (const char* f : {"certs/server.pem", "certs/server.key", "certs/ca.pem", "certs/crl.pem",
                          "certs/ca2.pem", "etc/partners.json"}) {
      write_file(dir_ / f, "placeholder");
    }
    reset();
  }

  /// Back to the minimal configuration, no problems seen.
  void reset() {
    problems_.clear();
    config_json_.Parse(minimal_config);
    ASSERT_TRUE(config_json_.IsObject());
  }

  /// Sets the member at `pointer` of the configuration to the JSON `value`.
  void set(const std::string& pointer, const std::string& value) {
    rapidjson::Document v(&config_json_.GetAllocator());
    ASSERT_FALSE(v.Parse(value.c_str()).HasParseError()) << value;
    rapidjson::Pointer(pointer.c_str()).Set(config_json_, v.Move(), config_json_.GetAllocator());
  }

  void erase(const std::string& pointer) {
    ASSERT_TRUE(rapidjson::Pointer(pointer.c_str()).Erase(config_json_)) << pointer;
  }

  /// Writes the configuration to etc/gateway.json and loads it.
  gateway_config load() { return load_text(json::to_string(config_json_)); }

  gateway_config load_text(const std::string& text) {
    write_file(file(), text);
    return load_gateway_config(file(), problems_);
  }

  std::filesystem::path file() const { return dir_ / "etc" / "gateway.json"; }

  /// The pointers of all problems; each must name the configuration file.
  std::multiset<std::string> problem_fields() const {
    std::multiset<std::string> out;
    for (const auto& p : problems_) {
      EXPECT_EQ(p.file, file().string()) << p.field << ": " << p.reason;
      EXPECT_FALSE(p.reason.empty()) << p.field;
      out.insert(p.field);
    }
    return out;
  }

  /// Expects exactly one problem, at `field`; returns its reason.
  std::string only_problem_at(const std::string& field) {
    EXPECT_EQ(problem_fields(), std::multiset<std::string>{field}) << describe(problems_);
    return problems_.empty() ? "" : problems_.front().reason;
  }

  temp_dir dir_;
  rapidjson::Document config_json_;
  std::vector<config_problem> problems_;
};

TEST_F(GatewayConfig, MinimalConfigLoadsWithPathsResolvedAgainstItsDirectory) {
  const auto config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  // The working directory is not dir_, so the files were found relative to etc/gateway.json.
  ASSERT_NE(std::filesystem::current_path(), dir_.path());
  const auto root = std::filesystem::absolute(dir_.path()).lexically_normal();
  EXPECT_EQ(config.source, file());
  EXPECT_EQ(config.listener.tls.certificate, root / "certs" / "server.pem");
  EXPECT_EQ(config.listener.tls.private_key, root / "certs" / "server.key");
  EXPECT_EQ(config.listener.tls.partner_cas,
            std::vector<std::filesystem::path>{root / "certs" / "ca.pem"});
  EXPECT_TRUE(config.listener.tls.crls.empty());
  EXPECT_EQ(config.store.path, root / "var" / "mxgw.db");
  EXPECT_EQ(config.partners_file, root / "etc" / "partners.json");
  EXPECT_EQ(config.schema_dir, root / "etc" / "schema");
  EXPECT_EQ(config.mappings_dir, root / "etc" / "mappings");
  EXPECT_TRUE(config.log.file.empty()) << "logs go to standard error unless a file is named";
}

TEST_F(GatewayConfig, AbsolutePathsAreKept) {
  const auto ca = std::filesystem::absolute(dir_ / "certs" / "ca2.pem");
  set("/listener/tls/partner_ca", "[\"../certs/ca.pem\", \"" + ca.string() + "\"]");
  set("/listener/tls/crl", "[\"../certs/crl.pem\"]");
  set("/log", R"({"level": "debug", "file": "../var/mxgw.log"})");
  const auto config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_EQ(config.listener.tls.partner_cas.size(), 2u);
  EXPECT_EQ(config.listener.tls.partner_cas[1], ca);
  const auto root = std::filesystem::absolute(dir_.path()).lexically_normal();
  EXPECT_EQ(config.listener.tls.crls,
            std::vector<std::filesystem::path>{root / "certs" / "crl.pem"});
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.file, root / "var" / "mxgw.log");
}

TEST_F(GatewayConfig, DefaultsWhenLimitsAndOptionsAreAbsent) {
  const auto config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const auto& limits = config.listener.limits;
  EXPECT_EQ(limits.max_body_bytes, 1024u * 1024u);
  EXPECT_EQ(limits.max_header_bytes, 16u * 1024u);
  EXPECT_EQ(limits.max_connections, 1024u);
  EXPECT_EQ(limits.handshake_timeout_ms, 10'000u);
  EXPECT_EQ(limits.header_timeout_ms, 10'000u);
  EXPECT_EQ(limits.body_timeout_ms, 30'000u);
  EXPECT_EQ(limits.idle_timeout_ms, 60'000u);
  EXPECT_EQ(limits.write_timeout_ms, 30'000u);
  EXPECT_EQ(limits.max_json_depth, 64u);
  EXPECT_EQ(config.listener.address, "127.0.0.1") << "loopback unless told otherwise";
  EXPECT_EQ(config.listener.port, 8443);
  EXPECT_EQ(config.listener.tls.min_version, "1.3");
  EXPECT_EQ(config.threads, 0u);
  EXPECT_EQ(config.store.kind, "sqlite");
  EXPECT_EQ(config.store.max_batch, 512u);
  EXPECT_EQ(config.store.max_size_bytes, 0u);
  EXPECT_EQ(config.store.checkpoint_pages, 4096u);
  EXPECT_EQ(config.store.wal_limit_pages, 65536u);
  EXPECT_EQ(config.log.level, "info");
}

TEST_F(GatewayConfig, ExplicitLimitsAreTaken) {
  set("/listener/limits", R"({"max_body_bytes": 2048, "max_header_bytes": 4096,
      "max_connections": 7, "handshake_timeout_ms": 100, "header_timeout_ms": 200,
      "body_timeout_ms": 300, "idle_timeout_ms": 400, "write_timeout_ms": 500,
      "max_json_depth": 8})");
  set("/listener/port", "0");
  set("/listener/address", R"("0.0.0.0")");
  set("/listener/tls/min_version", R"("1.2")");
  set("/threads", "4");
  const auto config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const auto& limits = config.listener.limits;
  EXPECT_EQ(limits.max_body_bytes, 2048u);
  EXPECT_EQ(limits.max_header_bytes, 4096u);
  EXPECT_EQ(limits.max_connections, 7u);
  EXPECT_EQ(limits.handshake_timeout_ms, 100u);
  EXPECT_EQ(limits.header_timeout_ms, 200u);
  EXPECT_EQ(limits.body_timeout_ms, 300u);
  EXPECT_EQ(limits.idle_timeout_ms, 400u);
  EXPECT_EQ(limits.write_timeout_ms, 500u);
  EXPECT_EQ(limits.max_json_depth, 8u);
  EXPECT_EQ(config.listener.port, 0);
  EXPECT_EQ(config.listener.address, "0.0.0.0");
  EXPECT_EQ(config.listener.tls.min_version, "1.2");
  EXPECT_EQ(config.threads, 4u);
}

TEST_F(GatewayConfig, UnknownMembersAreProblemsNotSilentDefaults) {
  for (const std::string& pointer :
       {std::string("/listner"), std::string("/listener/adress"),
        std::string("/listener/limits/max_body_byte"), std::string("/listener/tls/ciphers"),
        std::string("/store/journal"), std::string("/log/format")}) {
    SCOPED_TRACE(pointer);
    reset();
    set(pointer, "1");
    load();
    EXPECT_EQ(only_problem_at(pointer), "is not a known setting");
  }
}

TEST_F(GatewayConfig, TypoInALimitLeavesTheDefaultAndIsReported) {
  set("/listener/limits", R"({"max_body_byte": 10485760})");
  const auto config = load();
  only_problem_at("/listener/limits/max_body_byte");
  EXPECT_EQ(config.listener.limits.max_body_bytes, 1024u * 1024u);
}

TEST_F(GatewayConfig, WrongTypesAreReported) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/listener/port", R"("8443")"},
      {"/listener/address", "127"},
      {"/listener/limits", "[]"},
      {"/listener/tls/partner_ca", R"("../certs/ca.pem")"},
      {"/listener/tls/certificate", "true"},
      {"/threads", "-1"},
      {"/threads", "1.5"},
      {"/store/max_batch", R"("512")"},
      {"/log", R"("info")"},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(pointer + " = " + value);
    reset();
    set(pointer, value);
    load();
    // A required member of the wrong type may also be reported as missing, at the same place.
    const auto fields = problem_fields();
    EXPECT_EQ(std::set<std::string>(fields.begin(), fields.end()), std::set<std::string>{pointer})
        << describe(problems_);
  }
}

TEST_F(GatewayConfig, OutOfRangeNumbersAreReported) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/listener/port", "70000"},
      {"/listener/port", "65536"},
      {"/listener/limits/max_body_bytes", "10"},
      {"/listener/limits/max_body_bytes", "1000000000"},
      {"/listener/limits/max_json_depth", "1000"},
      {"/listener/limits/max_connections", "0"},
      {"/listener/limits/handshake_timeout_ms", "5"},
      {"/store/max_batch", "0"},
      {"/threads", "1000"},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(pointer + " = " + value);
    reset();
    set(pointer, value);
    load();
    const auto reason = only_problem_at(pointer);
    EXPECT_EQ(reason.rfind("must be a whole number from ", 0), 0u) << reason;
  }
}

TEST_F(GatewayConfig, PortAtTheEdgesIsFine) {
  set("/listener/port", "65535");
  EXPECT_EQ(load().listener.port, 65535);
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
}

TEST_F(GatewayConfig, OnlyTls13Or12) {
  for (const char* version : {"\"1.1\"", "\"1.0\"", "\"TLSv1.3\"", "\"\""}) {
    SCOPED_TRACE(version);
    reset();
    set("/listener/tls/min_version", version);
    load();
    only_problem_at("/listener/tls/min_version");
  }
}

TEST_F(GatewayConfig, TlsIsRequired) {
  erase("/listener/tls");
  load();
  EXPECT_EQ(only_problem_at("/listener/tls"), "is required");
}

TEST_F(GatewayConfig, PartnerCaIsRequired) {
  erase("/listener/tls/partner_ca");
  load();
  only_problem_at("/listener/tls/partner_ca");

  reset();
  set("/listener/tls/partner_ca", "[]");
  load();
  only_problem_at("/listener/tls/partner_ca");
}

TEST_F(GatewayConfig, CertificateKeyListenerStoreAndFilesAreRequired) {
  erase("/listener/tls/certificate");
  erase("/listener/tls/private_key");
  erase("/store");
  erase("/partners");
  erase("/schema_dir");
  erase("/mappings_dir");
  load();
  EXPECT_EQ(problem_fields(), (std::multiset<std::string>{
                                  "/listener/tls/certificate", "/listener/tls/private_key",
                                  "/store/path", "/partners", "/schema_dir", "/mappings_dir"}))
      << describe(problems_);

  reset();
  erase("/listener");
  load();
  only_problem_at("/listener");
}

TEST_F(GatewayConfig, PathsThatDoNotExistAreReportedWithTheResolvedPath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/listener/tls/certificate", "../certs/missing.pem"},
      {"/listener/tls/private_key", "../certs/missing.key"},
      {"/partners", "missing-partners.json"},
      {"/schema_dir", "missing-schema"},
      {"/mappings_dir", "missing-mappings"},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(pointer);
    reset();
    set(pointer, "\"" + value + "\"");
    load();
    const auto reason = only_problem_at(pointer);
    const auto resolved =
        (std::filesystem::absolute(file()).parent_path() / value).lexically_normal();
    EXPECT_NE(reason.find(resolved.string()), std::string::npos) << reason;
  }
  reset();
  set("/listener/tls/partner_ca", R"(["../certs/ca.pem", "../certs/missing-ca.pem"])");
  set("/listener/tls/crl", R"(["../certs/missing-crl.pem"])");
  load();
  EXPECT_EQ(problem_fields(),
            (std::multiset<std::string>{"/listener/tls/partner_ca/1", "/listener/tls/crl/0"}))
      << describe(problems_);
}

TEST_F(GatewayConfig, StoreFileAndLogFileNeedNotExistYet) {
  set("/store/path", R"("../var/new/mxgw.db")");
  set("/log", R"({"file": "../var/new/mxgw.log"})");
  load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
}

TEST_F(GatewayConfig, TheWriteAheadLogsCheckpointAndBoundAreSettings) {
  set("/store/checkpoint_pages", "1000");
  set("/store/wal_limit_pages", "20000");
  auto config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.store.checkpoint_pages, 1000u);
  EXPECT_EQ(config.store.wal_limit_pages, 20000u);

  reset();
  set("/store/checkpoint_pages", "8192");
  set("/store/wal_limit_pages", "4096");  // a bound under the checkpoint's trigger
  load();
  only_problem_at("/store/wal_limit_pages");

  reset();
  set("/store/checkpoint_pages", "0");
  load();
  only_problem_at("/store/checkpoint_pages");

  reset();
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "wal_limit_pages": 100000})");
  load();
  only_problem_at("/store/wal_limit_pages");  // a setting of the SQLite store only
}

TEST_F(GatewayConfig, PartnerEndpointsAreCheckedAgainstTheListenersCrlsWithItsAnchors) {
  set("/listener/tls/crl", R"(["../certs/crl.pem"])");
  auto config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.delivery.partner_server_crl, config.listener.tls.crls);
  EXPECT_FALSE(config.delivery.partner_server_crl.empty());

  // Other anchors: the listener's CRLs are not theirs, so none unless named.
  set("/delivery", R"({"partner_server_ca": ["../certs/ca.pem"]})");
  config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_TRUE(config.delivery.partner_server_crl.empty());

  set("/delivery",
      R"({"partner_server_ca": ["../certs/ca.pem"], "partner_server_crl": ["../certs/crl.pem"]})");
  config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_EQ(config.delivery.partner_server_crl.size(), 1U);
  EXPECT_EQ(config.delivery.partner_server_crl[0].filename(), "crl.pem");
}

// Every attempt must end within its lease: a partner's delivery timeout_ms at or above the lease
// less its margin (a tenth, at least 500 ms) is a problem of the configuration, named at
// /delivery/lease_ms with the partner; nothing is checked when deliveries are off.
TEST_F(GatewayConfig, APartnerTimeoutMustBeBelowTheDeliveryLeaseLessItsMargin) {
  write_file(dir_ / "etc" / "partners.json", R"({"partners":[
    {"id":"kh-ratanakiri","name":"Ratanakiri","country":"KH",
     "endpoint":"https://kh.example:9443/v1/messages","delivery":{"timeout_ms":5000}},
    {"id":"la-houaphanh","name":"Houaphanh","country":"LA","delivery":{"timeout_ms":400}}]})");
  auto config = load();  // the default lease, two minutes
  ASSERT_TRUE(problems_.empty()) << describe(problems_);

  set("/delivery", R"({"lease_ms": 5500})");  // 5500 - 550 = 4950: not above 5000
  config = load();
  const auto reason = only_problem_at("/delivery/lease_ms");
  EXPECT_NE(reason.find("kh-ratanakiri"), std::string::npos) << reason;
  EXPECT_NE(reason.find("5000"), std::string::npos) << reason;

  reset();
  set("/delivery", R"({"lease_ms": 5600})");  // 5600 - 560 = 5040
  config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);

  reset();
  set("/delivery", R"({"enabled": false, "lease_ms": 1000})");
  config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
}

TEST_F(GatewayConfig, StoreKindIsSqliteOrPostgres) {
  set("/store/kind", R"("mysql")");
  load();
  only_problem_at("/store/kind");
}

TEST_F(GatewayConfig, PostgresStoreNeedsADsnAndNoSqliteSettings) {
  set("/store", R"({"kind": "postgres", "path": "../var/mxgw.db", "max_size_bytes": 1})");
  load();
  EXPECT_EQ(problem_fields(),
            (std::multiset<std::string>{"/store/dsn", "/store/max_size_bytes", "/store/path"}))
      << describe(problems_);

  reset();
  set("/store", R"({"kind": "postgres", "dsn": "host=db1 dbname=mxgw user=mxgw",
                    "schema": "mxgw", "max_batch": 64})");
  const auto config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.store.kind, "postgres");
  EXPECT_EQ(config.store.dsn, "host=db1 dbname=mxgw user=mxgw");
  EXPECT_EQ(config.store.schema, "mxgw");
  EXPECT_EQ(config.store.max_batch, 64U);
  EXPECT_EQ(read_store_password(config.store), "");

  reset();
  set("/store/dsn", R"("host=db1")");  // a PostgreSQL setting under the SQLite store
  load();
  only_problem_at("/store/dsn");
}

TEST_F(GatewayConfig, APasswordInTheDsnIsAProblemThatDoesNotRepeatIt) {
  for (const char* dsn : {R"("host=db1 user=mxgw password=Hunter2-secret")",
                          R"("postgresql://mxgw:Hunter2-secret@db1/mxgw")",
                          R"("host=db1 password='Hunter2-secret")"}) {
    reset();
    set("/store", R"({"kind": "postgres"})");
    set("/store/dsn", dsn);
    load();
    const std::string reason = only_problem_at("/store/dsn");
    EXPECT_EQ(reason.find("Hunter2"), std::string::npos) << reason;
  }
}

TEST_F(GatewayConfig, ThePasswordFileMustBeClosedToGroupAndOthers) {
  const auto secret = dir_ / "etc" / "pg-password";
  write_file(secret, "Hunter2-secret\n");
  std::filesystem::permissions(secret, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write |
                                           std::filesystem::perms::group_read);
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "password_file": "pg-password"})");
  auto config = load();
  std::string reason = only_problem_at("/store/password_file");
  EXPECT_NE(reason.find("0600"), std::string::npos) << reason;
  EXPECT_EQ(reason.find("Hunter2"), std::string::npos) << reason;

  std::filesystem::permissions(secret, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
  reset();
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "password_file": "pg-password"})");
  config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(read_store_password(config.store), "Hunter2-secret");  // without the newline

  reset();
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "password_file": "missing"})");
  load();
  only_problem_at("/store/password_file");
}

TEST_F(GatewayConfig, ThePasswordComesFromAFileOrTheEnvironmentNotBoth) {
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "password_env": "MXGW_TEST_UNSET_PW"})");
  load();
  EXPECT_NE(only_problem_at("/store/password_env").find("not set"), std::string::npos);

  ::setenv("MXGW_TEST_PG_PW", "from-the-environment", 1);
  reset();
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "password_env": "MXGW_TEST_PG_PW"})");
  const auto config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(read_store_password(config.store), "from-the-environment");
  ::unsetenv("MXGW_TEST_PG_PW");

  reset();
  set("/store", R"({"kind": "postgres", "dsn": "host=db1", "password_env": "X",
                    "password_file": "pg-password"})");
  load();
  only_problem_at("/store/password_env");
}

TEST_F(GatewayConfig, UnknownLogLevel) {
  set("/log", R"({"level": "verbose"})");
  load();
  only_problem_at("/log/level");
}

TEST_F(GatewayConfig, EveryProblemInOneFileIsReported) {
  set("/listner", "{}");
  set("/listener/port", "70000");
  set("/listener/limits", R"({"max_body_byte": 1, "max_body_bytes": 10})");
  set("/listener/tls/min_version", R"("1.1")");
  set("/listener/tls/certificate", R"("../certs/missing.pem")");
  set("/store/kind", R"("mysql")");
  set("/log", R"({"level": "loud"})");
  load();
  EXPECT_EQ(problem_fields(), (std::multiset<std::string>{
                                  "/listner", "/listener/port", "/listener/limits/max_body_byte",
                                  "/listener/limits/max_body_bytes", "/listener/tls/min_version",
                                  "/listener/tls/certificate", "/store/kind", "/log/level"}))
      << describe(problems_);
}

TEST_F(GatewayConfig, InvalidJsonIsOneProblemNamingTheFile) {
  load_text(R"({"listener": {"port": 8443,)");
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, file().string());
  EXPECT_EQ(problems_[0].field, "");
  EXPECT_FALSE(problems_[0].reason.empty());
}

TEST_F(GatewayConfig, DuplicateSettingIsInvalidJson) {
  // Which of two "port" members wins must not be left to the parser.
  load_text(R"({"threads": 1, "threads": 2})");
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, file().string());
}

TEST_F(GatewayConfig, TopLevelMustBeAnObject) {
  load_text("[]");
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, file().string());
}

TEST_F(GatewayConfig, MissingFileIsOneProblem) {
  std::vector<config_problem> problems;
  load_gateway_config(dir_ / "etc" / "absent.json", problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir_ / "etc" / "absent.json").string());
}

TEST_F(GatewayConfig, StoreEncryptionKeysAreChecked) {
  write_file(dir_ / "etc" / "k1.hex", std::string(64, 'a'));
  set("/store/encryption", R"({"active": "k1", "keys": [{"id": "k1", "file": "k1.hex"}]})");
  const gateway_config good = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_EQ(good.store.keys.size(), 1U);
  EXPECT_EQ(good.store.keys[0].file, dir_ / "etc" / "k1.hex");
  EXPECT_EQ(good.store.active_key, "k1");

  set("/store/encryption", R"({"active": "k9", "keys": [
      {"id": "k1", "file": "k1.hex"},
      {"id": "k1", "env": "MXGW_K"},
      {"id": "k2", "file": "k1.hex", "env": "MXGW_K"},
      {"file": "absent.hex"},
      "k3"]})");
  load();
  EXPECT_EQ(problem_fields(),
            (std::multiset<std::string>{"/store/encryption/keys/1/id", "/store/encryption/keys/2",
                                        "/store/encryption/keys/3/id",
                                        "/store/encryption/keys/3/file",
                                        "/store/encryption/keys/4", "/store/encryption/active"}))
      << describe(problems_);
}

TEST_F(GatewayConfig, DeadlineKnobsHaveDefaultsAndAreChecked) {
  auto config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.deadlines.sweep_interval_s, 300u);
  EXPECT_EQ(config.deadlines.lookback_days, 180u);
  EXPECT_EQ(config.deadlines.held_after_hours, 24u);
  set("/deadlines", R"({"sweep_interval_s": 60, "lookback_days": 30, "held_after_hours": 4})");
  config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.deadlines.sweep_interval_s, 60u);
  EXPECT_EQ(config.deadlines.lookback_days, 30u);
  EXPECT_EQ(config.deadlines.held_after_hours, 4u);
  for (const auto& [value, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"held_after_hours": 0})", "/deadlines/held_after_hours"},
           {R"({"held_after_hours": 8761})", "/deadlines/held_after_hours"},
           {R"({"held_after_hours": "24"})", "/deadlines/held_after_hours"},
           {R"({"lookback_days": 0})", "/deadlines/lookback_days"},
           {R"({"held_after": 24})", "/deadlines/held_after"}}) {
    set("/deadlines", value);
    problems_.clear();
    load();
    EXPECT_EQ(problem_fields(), (std::multiset<std::string>{field}))
        << value << describe(problems_);
  }
}

TEST_F(GatewayConfig, PersonsMatchKeyIsOptionalAndChecked) {
  EXPECT_FALSE(load().persons.enabled());  // no persons section: matching is off
  EXPECT_TRUE(problems_.empty()) << describe(problems_);

  write_file(dir_ / "etc" / "match.hex", std::string(64, 'b'));
  set("/persons", R"({"match_key": {"file": "match.hex"}})");
  const gateway_config good = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_TRUE(good.persons.enabled());
  EXPECT_EQ(good.persons.match_key.file, dir_ / "etc" / "match.hex");

  set("/persons", R"({"match_key": {"env": "MXGW_MATCH_KEY"}})");
  EXPECT_EQ(load().persons.match_key.env, "MXGW_MATCH_KEY");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);

  for (const auto& [value, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"match_key": {"file": "match.hex", "env": "X"}})", "/persons/match_key"},
           {R"({"match_key": {}})", "/persons/match_key"},
           {R"({"match_key": {"file": "absent.hex"}})", "/persons/match_key/file"},
           {R"({"match_key": {"id": "m", "file": "match.hex"}})", "/persons/match_key/id"},
           {R"({"match_key": "match.hex"})", "/persons/match_key"},
           {R"({"matchKey": {"file": "match.hex"}})", "/persons/matchKey"}}) {
    set("/persons", value);
    problems_.clear();
    load();
    EXPECT_EQ(problem_fields(), (std::multiset<std::string>{field}))
        << value << describe(problems_);
  }
}

TEST_F(GatewayConfig, MessageIdKeyIsOptionalAndChecked) {
  EXPECT_FALSE(load().message_ids.enabled());  // no message_ids section: ids derived unkeyed
  EXPECT_TRUE(problems_.empty()) << describe(problems_);

  write_file(dir_ / "etc" / "id.hex", std::string(64, 'c'));
  set("/message_ids", R"({"key": {"file": "id.hex"}})");
  const gateway_config good = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_TRUE(good.message_ids.enabled());
  EXPECT_EQ(good.message_ids.key.file, dir_ / "etc" / "id.hex");

  set("/message_ids", R"({"key": {"env": "MXGW_ID_KEY"}})");
  EXPECT_EQ(load().message_ids.key.env, "MXGW_ID_KEY");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);

  for (const auto& [value, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"key": {"file": "id.hex", "env": "X"}})", "/message_ids/key"},
           {R"({"key": {}})", "/message_ids/key"},
           {R"({"key": {"file": "absent.hex"}})", "/message_ids/key/file"},
           {R"({"key": {"id": "m", "file": "id.hex"}})", "/message_ids/key/id"},
           {R"({"key": "id.hex"})", "/message_ids/key"},
           {R"({"secret": {"file": "id.hex"}})", "/message_ids/secret"}}) {
    set("/message_ids", value);
    problems_.clear();
    load();
    EXPECT_EQ(problem_fields(), (std::multiset<std::string>{field}))
        << value << describe(problems_);
  }
  set("/message_ids", R"("id.hex")");
  problems_.clear();
  load();
  EXPECT_EQ(problem_fields(), (std::multiset<std::string>{"/message_ids"})) << describe(problems_);
}

// A real CA certificate in PEM at `file` (the admin anchor check compares certificates).
std::string write_ca(const std::filesystem::path& file, const std::string& name) {
  const auto now = std::chrono::system_clock::now();
  auto ca = identity::cert_authority::create(name, now - std::chrono::hours(1),
                                             now + std::chrono::hours(24));
  write_file(file, ca.cert_pem());
  return ca.cert_pem();
}

TEST_F(GatewayConfig, AdminListenerDefaultsToLoopback9443AndTheListenersCertificate) {
  write_ca(dir_ / "certs" / "admin-ca.pem", "admin CA");
  set("/admin", R"({"admin_cas": ["../certs/admin-ca.pem"]})");
  const auto config = load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_TRUE(config.admin.enabled);
  EXPECT_EQ(config.admin.listener.address, "127.0.0.1");
  EXPECT_EQ(config.admin.listener.port, 9443);
  EXPECT_EQ(config.admin.listener.tls.certificate, config.listener.tls.certificate);
  EXPECT_EQ(config.admin.listener.tls.partner_cas,
            std::vector<std::filesystem::path>{(dir_ / "certs" / "admin-ca.pem").lexically_normal()});
}

TEST_F(GatewayConfig, NoAdminSectionMeansNoAdminListener) {
  EXPECT_FALSE(load().admin.enabled);
}

TEST_F(GatewayConfig, AdminAnchorThatIsAlsoAPartnerAnchorIsAStartUpError) {
  const auto pem = write_ca(dir_ / "certs" / "ca.pem", "partner CA");
  set("/admin", R"({"admin_cas": ["../certs/ca.pem"]})");
  load();
  EXPECT_NE(only_problem_at("/admin/admin_cas/0").find("also a partner trust anchor"),
            std::string::npos);
  // The same certificate under another name is the same anchor.
  reset();
  write_file(dir_ / "certs" / "copy.pem", pem);
  set("/admin", R"({"admin_cas": ["../certs/copy.pem"]})");
  load();
  only_problem_at("/admin/admin_cas/0");
}

TEST_F(GatewayConfig, AnAnchorSharedAnywhereInTheBundlesIsAStartUpError) {
  // Every certificate in an anchor file is an anchor: the admin CA second in the partners'
  // bundle, or a partner CA second in the administrators', chains on both ports.
  const auto admin_pem = write_ca(dir_ / "certs" / "admin-ca.pem", "admin CA");
  const auto partner_pem = write_ca(dir_ / "certs" / "ca.pem", "partner CA");
  const auto other_pem = write_ca(dir_ / "certs" / "other.pem", "another partner CA");
  write_file(dir_ / "certs" / "partners-bundle.pem", other_pem + admin_pem);
  write_file(dir_ / "certs" / "admins-bundle.pem", admin_pem + partner_pem);
  write_file(dir_ / "certs" / "annotated.pem", "another partner CA:\n" + other_pem);

  // Distinct bundles are fine: the check looks at certificates, not at file names.
  set("/admin", R"({"admin_cas": ["../certs/admin-ca.pem"]})");
  set("/listener/tls/partner_ca", R"(["../certs/ca.pem", "../certs/annotated.pem"])");
  load();
  EXPECT_TRUE(problems_.empty()) << describe(problems_);

  // The admin CA second in a partner bundle.
  reset();
  set("/admin", R"({"admin_cas": ["../certs/admin-ca.pem"]})");
  set("/listener/tls/partner_ca", R"(["../certs/ca.pem", "../certs/partners-bundle.pem"])");
  load();
  EXPECT_NE(only_problem_at("/admin/admin_cas/0").find("partners-bundle.pem"), std::string::npos);

  // A partner CA second in the administrators' bundle, which is the second admin anchor file.
  reset();
  write_ca(dir_ / "certs" / "admin2.pem", "second admin CA");
  set("/admin", R"({"admin_cas": ["../certs/admin2.pem", "../certs/admins-bundle.pem"]})");
  load();
  EXPECT_NE(only_problem_at("/admin/admin_cas/1").find("also a partner trust anchor"),
            std::string::npos);

  // Second on both sides.
  reset();
  write_file(dir_ / "certs" / "admins-bundle.pem", admin_pem + other_pem);
  write_file(dir_ / "certs" / "partners-bundle.pem", partner_pem + other_pem);
  set("/admin", R"({"admin_cas": ["../certs/admins-bundle.pem"]})");
  set("/listener/tls/partner_ca", R"(["../certs/partners-bundle.pem"])");
  load();
  EXPECT_NE(only_problem_at("/admin/admin_cas/0").find("partners-bundle.pem"), std::string::npos);
}

TEST_F(GatewayConfig, PinnedPartnerAnchorsAreReadAndAnchorDeliveryButNeverAdmins) {
  const auto admin_pem = write_ca(dir_ / "certs" / "admin-ca.pem", "admin CA");
  write_ca(dir_ / "certs" / "lao-ministry.pem", "Lao ministry CA");
  set("/admin", R"({"admin_cas": ["../certs/admin-ca.pem"]})");
  set("/listener/tls/pinned_partner_ca", R"(["../certs/lao-ministry.pem"])");
  auto config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_EQ(config.listener.tls.pinned_partner_cas.size(), 1U);
  EXPECT_EQ(config.listener.tls.pinned_partner_cas[0].filename(), "lao-ministry.pem");
  // A partner's server may chain to its own agency's CA.
  const auto& servers = config.delivery.partner_server_ca;
  EXPECT_NE(std::find(servers.begin(), servers.end(), config.listener.tls.pinned_partner_cas[0]),
            servers.end());

  // Another agency's CA must not be an administrators' anchor either.
  reset();
  write_file(dir_ / "certs" / "lao-ministry.pem", admin_pem);
  set("/admin", R"({"admin_cas": ["../certs/admin-ca.pem"]})");
  set("/listener/tls/pinned_partner_ca", R"(["../certs/lao-ministry.pem"])");
  load();
  EXPECT_NE(only_problem_at("/admin/admin_cas/0").find("lao-ministry.pem"), std::string::npos);
}

TEST_F(GatewayConfig, AdminSectionNeedsAnAnchorAndItsOwnPort) {
  set("/admin", R"({"port": 8443})");
  load();
  EXPECT_EQ(problem_fields(), (std::multiset<std::string>{"/admin/admin_cas", "/admin/port"}))
      << describe(problems_);
}

TEST(RepositoryGatewayConfig, ShippedConfigHasNoProblemsBeyondUncreatedDevCertificates) {
  // config/gateway.json names certificates and a store key that scripts/run.sh creates (for the
  // listener, for delivery, for encryption at rest); apart from those being
  // absent in a fresh checkout, the shipped file must be clean.
  std::vector<config_problem> problems;
  const auto config = load_gateway_config(test::source_dir() / "config" / "gateway.json", problems);
  for (const auto& p : problems) {
    EXPECT_NE(p.reason.find("does not exist"), std::string::npos) << p.field << ": " << p.reason;
    EXPECT_TRUE(p.field.rfind("/listener/tls/", 0) == 0 || p.field.rfind("/delivery/", 0) == 0 ||
                p.field == "/store/encryption/keys/0/file" ||
                p.field == "/persons/match_key/file" || p.field == "/message_ids/key/file" ||
                p.field.rfind("/admin/", 0) == 0)
        << p.field << ": " << p.reason;
  }
  // The shipped configuration encrypts the store at rest, matches persons across messages and
  // derives message ids under a key.
  EXPECT_TRUE(config.persons.enabled());
  EXPECT_TRUE(config.message_ids.enabled());
  ASSERT_EQ(config.store.keys.size(), 1U);
  EXPECT_EQ(config.store.active_key, config.store.keys[0].id);
  EXPECT_EQ(config.listener.address, "127.0.0.1");
  EXPECT_EQ(config.listener.tls.min_version, "1.3");
  EXPECT_EQ(config.schema_dir, (test::source_dir() / "config" / "schema").lexically_normal());
}

TEST_F(GatewayConfig, AuditKnobsHaveDefaultsAndAreChecked) {
  auto config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.audit.checkpoint_every_entries, 1000u);
  EXPECT_EQ(config.audit.checkpoint_interval_s, 300u);
  EXPECT_EQ(config.audit.refusals_per_minute, 60u);
  set("/audit", R"({"checkpoint_every_entries": 50, "checkpoint_interval_s": 10,
      "refusals_per_minute": 5})");
  config = load();
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(config.audit.checkpoint_every_entries, 50u);
  EXPECT_EQ(config.audit.checkpoint_interval_s, 10u);
  EXPECT_EQ(config.audit.refusals_per_minute, 5u);
  for (const auto& [pointer, value] :
       std::vector<std::pair<std::string, std::string>>{{"/audit/checkpoint_every_entries", "0"},
                                                        {"/audit/checkpoint_interval_s", "0"},
                                                        {"/audit/refusals_per_minute", "0"},
                                                        {"/audit/checkpoint_interval_s", "\"5\""}}) {
    SCOPED_TRACE(pointer + " = " + value);
    reset();
    set(pointer, value);
    config = load();
    EXPECT_EQ(only_problem_at(pointer).rfind("must be a whole number from ", 0), 0u);
  }
  reset();
  set("/audit/checkpoint_every", "5");
  load();
  EXPECT_EQ(only_problem_at("/audit/checkpoint_every"), "is not a known setting");
}

}  // namespace
}  // namespace mxgw::config
