// `mxgw config check` on the gateway-wide feed limits (`feed` in gateway.json): a good value is
// ok, a bad one is named by its pointer and refused with exit status 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "gateway/config/gateway_config.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "tests/support/mxgw_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

class FeedConfigCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN"}]})");
  }

  /// A complete configuration with `feed` (JSON text, "" for none).
  void write_config(const std::string& feed) const {
    write_file(config_file(), R"({
      "listener": {"address": "127.0.0.1", "port": 0,
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"], "crl": ["certs/crl.pem"]}},
      "store": {"path": "var/mxgw.db"},
      "partners": "partners.json",)" +
                                  (feed.empty() ? "" : R"("feed": )" + feed + ",") + R"(
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                  R"(",
      "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                  R"("
    })");
  }

  run_result check() const {
    return run_mxgw({"config", "check", "--config", config_file().string()}, dir_.path());
  }

  std::filesystem::path config_file() const { return dir_ / "gateway.json"; }

  temp_dir dir_;
};

TEST_F(FeedConfigCheck, MaxWithdrawalsPerSweepDefaultsToTenAndIsRead) {
  write_config("");
  std::vector<config::config_problem> problems;
  EXPECT_EQ(config::load_gateway_config(config_file(), problems).feed.max_withdrawals_per_sweep,
            10u);
  EXPECT_TRUE(problems.empty());
  write_config(R"({"max_withdrawals_per_sweep": 500})");
  EXPECT_EQ(config::load_gateway_config(config_file(), problems).feed.max_withdrawals_per_sweep,
            500u);
  EXPECT_TRUE(problems.empty());
  const auto r = check();
  EXPECT_EQ(r.exit_status, 0) << r.err;
}

TEST_F(FeedConfigCheck, ABadMaxWithdrawalsPerSweepIsRefusedWithItsPointer) {
  for (const auto& [feed, pointer, says] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {R"({"max_withdrawals_per_sweep": 0})", "/feed/max_withdrawals_per_sweep",
            "must be a whole number from 1 to 100000"},
           {R"({"max_withdrawals_per_sweep": -5})", "/feed/max_withdrawals_per_sweep",
            "must be a whole number from 1 to 100000"},
           {R"({"max_withdrawals_per_sweep": 2.5})", "/feed/max_withdrawals_per_sweep",
            "must be a whole number from 1 to 100000"},
           {R"({"max_withdrawals_per_sweep": "10"})", "/feed/max_withdrawals_per_sweep",
            "must be a whole number from 1 to 100000"},
           {R"({"max_withdrawals_per_sweep": 100001})", "/feed/max_withdrawals_per_sweep",
            "must be a whole number from 1 to 100000"},
           {R"({"max_withdrawal_per_sweep": 10})", "/feed/max_withdrawal_per_sweep",
            "is not a known setting"},
           {R"(10)", "/feed", "must be an object"}}) {
    write_config(feed);
    const auto r = check();
    EXPECT_EQ(r.exit_status, 2) << feed;
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << feed << "\n" << r.err;
    EXPECT_EQ(lines[0], config_file().string() + ": " + pointer + ": " + says) << feed;
  }
}

}  // namespace
}  // namespace mxgw::test
