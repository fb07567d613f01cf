// `mxgw config check --config FILE` run as a real process: exit status 0 and "ok" for a good
// configuration, 2 and one "FILE: POINTER: REASON" line per problem for a bad one.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "tests/support/mxgw_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

class ConfigCheckCli : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN"},
      {"id": "kh-ratanakiri", "name": "Ratanakiri Provincial Police", "country": "KH"}]})");
  }

  /// A complete configuration with the certificates made above; `listener_extra` and
  /// `store_kind` let a test break it.
  std::string config_text(const std::string& listener_extra = "",
                          const std::string& store_kind = "sqlite") const {
    return R"({
      "listener": {
        "address": "127.0.0.1",
        "port": 0,)" +
           listener_extra + R"(
        "tls": {
          "certificate": "certs/server.pem",
          "private_key": "certs/server.key",
          "partner_ca": ["certs/ca.pem"],
          "crl": ["certs/crl.pem"]
        }
      },
      "store": {"kind": ")" +
           store_kind + R"(", "path": "var/mxgw.db"},
      "partners": "partners.json",
      "schema_dir": ")" +
           (source_dir() / "config" / "schema").string() + R"(",
      "mappings_dir": ")" +
           (source_dir() / "config" / "mappings").string() + R"("
    })";
  }

  std::filesystem::path config_file() const { return dir_ / "gateway.json"; }

  temp_dir dir_;
};

TEST_F(ConfigCheckCli, ValidConfigIsOk) {
  write_file(config_file(), config_text());
  const auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_EQ(r.out, config_file().string() + ": ok\n");
  EXPECT_EQ(r.err, "");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "var" / "mxgw.db")) << "a check creates no store";
}

TEST_F(ConfigCheckCli, EveryProblemIsListedAsFilePointerReason) {
  write_file(config_file(), config_text(R"( "limits": {"max_body_byte": 1048576},)", "mysql"));
  // The third problem: a port out of range.
  std::string text = read_file(config_file());
  text.replace(text.find(R"("port": 0)"), 9, R"("port": 70000)");
  write_file(config_file(), text);

  const auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_EQ(r.out, "");
  const auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 3u) << r.err;
  std::set<std::string> pointers;
  const std::string prefix = config_file().string() + ": ";
  for (const auto& line : lines) {
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
    const auto rest = line.substr(prefix.size());
    const auto colon = rest.find(": ");
    ASSERT_NE(colon, std::string::npos) << line;
    pointers.insert(rest.substr(0, colon));
    EXPECT_GT(rest.size(), colon + 2) << "a reason follows the pointer: " << line;
  }
  EXPECT_EQ(pointers, (std::set<std::string>{"/listener/port", "/listener/limits/max_body_byte",
                                             "/store/kind"}))
      << r.err;
}

TEST_F(ConfigCheckCli, TheDeliveryClientsCertificatesAndCrlsAreChecked) {
  // A CRL with the right issuer name from another key, and a key that is not the certificate's.
  const auto now = std::chrono::system_clock::now();
  const auto rogue = identity::cert_authority::create(
      "mxgw development CA", now - std::chrono::hours(1), now + std::chrono::hours(24));
  write_file(dir_ / "certs" / "rogue-crl.pem", rogue.make_crl({}));
  write_file(dir_ / "certs" / "other.key", rogue.key_pem());
  const auto with_delivery = [this](const std::string& delivery) {
    std::string text = config_text();
    text.replace(text.find(R"("partners":)"), 0, R"("delivery": )" + delivery + ",\n      ");
    return text;
  };
  for (
      const auto& [delivery, says] : std::vector<std::pair<std::string, std::string>>{
          {R"({"partner_server_ca": ["certs/ca.pem"], "partner_server_crl": ["certs/rogue-crl.pem"]})",
           "not signed by any of the trust anchors"},
          {R"({"client_certificate": "certs/server.pem", "client_key": "certs/other.key"})",
           "delivery client identity"}}) {
    write_file(config_file(), with_delivery(delivery));
    const auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
    EXPECT_EQ(r.exit_status, 2) << delivery;
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind(config_file().string() + ": /delivery: ", 0), 0u) << lines[0];
    EXPECT_NE(lines[0].find(says), std::string::npos) << lines[0];
  }
  // With deliveries off nothing of theirs is looked at.
  write_file(config_file(),
             with_delivery(R"({"enabled": false, "partner_server_ca": ["certs/ca.pem"],
                               "partner_server_crl": ["certs/rogue-crl.pem"]})"));
  EXPECT_EQ(
      run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path()).exit_status,
      0);
}

TEST_F(ConfigCheckCli, APostgresDsnWithAPasswordIsNamedButNeverPrinted) {
  std::string text = config_text();
  const std::string sqlite_store = R"("store": {"kind": "sqlite", "path": "var/mxgw.db"})";
  ASSERT_NE(text.find(sqlite_store), std::string::npos);
  text.replace(text.find(sqlite_store), sqlite_store.size(),
               R"("store": {"kind": "postgres", "dsn": "host=db1 user=mxgw password=Hunter2-pw"})");
  write_file(config_file(), text);
  const auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find(": /store/dsn: must not carry a password"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Hunter2"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("Hunter2"), std::string::npos) << r.out;
}

// The keys are read as the start reads them: a key in the wrong format or a file others can read
// is a problem (named, the key never printed); good keys are ok.
TEST_F(ConfigCheckCli, TheStoreKeysAndTheMatchKeyAreRead) {
  const auto with_keys = [this](const std::string& store_key, const std::string& match_key) {
    std::string text = config_text();
    const std::string store = R"("path": "var/mxgw.db")";
    text.replace(text.find(store), store.size(),
                 store + R"(, "encryption": {"active": "k1", "keys": [{"id": "k1", "file": ")" +
                     store_key + R"("}]})");
    text.replace(text.find(R"("partners":)"), 0,
                 R"("persons": {"match_key": {"file": ")" + match_key + R"("}},
      )");
    return text;
  };
  const std::string good(64, 'c');
  const std::string secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeX";
  for (const char* name : {"store.hex", "match.hex", "short.hex", "open.hex", "bad.hex"}) {
    write_file(dir_ / name, std::string(name) == "short.hex" ? "abcd"
                            : std::string(name) == "bad.hex" ? secret
                                                             : good);
    std::filesystem::permissions(dir_ / name, std::string(name) == "open.hex"
                                                  ? std::filesystem::perms(0644)
                                                  : std::filesystem::perms(0600));
  }
  write_file(config_file(), with_keys("store.hex", "match.hex"));
  auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 0) << r.err;

  for (const auto& [store_key, match_key, pointer] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"store.hex", "short.hex", "/persons/match_key"},
           {"store.hex", "open.hex", "/persons/match_key"},
           {"store.hex", "bad.hex", "/persons/match_key"},
           {"open.hex", "match.hex", "/store/encryption"}}) {
    write_file(config_file(), with_keys(store_key, match_key));
    r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
    EXPECT_EQ(r.exit_status, 2) << store_key << " " << match_key;
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind(config_file().string() + ": " + pointer + ": ", 0), 0u) << lines[0];
    EXPECT_EQ(r.err.find("0123456789abcdef"), std::string::npos) << r.err;
  }
}

TEST_F(ConfigCheckCli, ProblemsInThePartnersFileNameThatFile) {
  write_file(config_file(), config_text());
  write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai", "country": "VN"},
      {"id": "vn-gialai", "name": "Gia Lai again", "country": "VN"}]})");
  const auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_EQ(lines_of(r.err),
            std::vector<std::string>{(dir_ / "partners.json").string() +
                                     ": /partners/1/id: duplicates an earlier partner"})
      << r.err;
}

TEST_F(ConfigCheckCli, MissingConfigFileIsExitStatus2NamingIt) {
  const auto missing = dir_ / "absent.json";
  const auto r = run_mxgw({"config", "check", "--config", missing.string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  const auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind(missing.string() + ": ", 0), 0u) << lines[0];
}

TEST_F(ConfigCheckCli, MissingConfigOptionIsAUsageError) {
  const auto r = run_mxgw({"config", "check"}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("--config"), std::string::npos) << r.err;
}

TEST_F(ConfigCheckCli, MistakesInMappingFilesAndRuleFilesNameFileAndEntry) {
  std::string text = config_text();
  text.insert(text.rfind('}'), R"(, "adapters_dir": "adapters", "translit_dir": "translit")");
  write_file(config_file(), text);
  std::string mapping = read_file(source_dir() / "config" / "adapters" / "kh-stt.json");
  mapping.replace(mapping.find("\"/body/person/sex\""), 18, "\"/body/person/gender\"");
  std::filesystem::create_directories(dir_ / "adapters");
  std::filesystem::create_directories(dir_ / "translit");
  write_file(dir_ / "adapters" / "kh-stt.json", mapping);
  write_file(dir_ / "translit" / "Khmr-Latn.txt", "\u1780 > k ;\n\u1781 > ;\n($bad) > x ;\n");
  const auto r = run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  const auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 2u) << r.err;
  EXPECT_EQ(lines[0].rfind((dir_ / "translit" / "Khmr-Latn.txt").string() + ": line 3, column ", 0),
            0u)
      << lines[0];
  EXPECT_EQ(lines[1], (dir_ / "adapters" / "kh-stt.json").string() +
                          ": /fields/7/canonical: names unknown canonical field "
                          "'/body/person/gender' (message type victim.identification)")
      << r.err;
}

}  // namespace
}  // namespace mxgw::test
