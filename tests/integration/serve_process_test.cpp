// The real `mxgw serve` process: starts from a config file, accepts over mutual TLS, and on SIGTERM
// finishes, flushes the store and exits 0 with the message kept.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <string>

#include "gateway/cli/client.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/integration/child_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

TEST(ServeProcess, AcceptsThenStopsCleanlyOnSigterm) {
  temp_dir dir;
  identity::certs_init({.dir = dir / "certs"});
  identity::certs_issue_partner(dir / "certs", "vn-gialai", dir / "certs" / "vn-gialai");
  write_file(dir / "partners.json",
             R"({"partners":[{"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"}]})");
  const std::string config = R"({
    "threads": 2,
    "listener": {"address": "127.0.0.1", "port": 0,
      "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
              "partner_ca": ["certs/ca.pem"], "crl": ["certs/crl.pem"]}},
    "store": {"path": "var/mxgw.db"},
    "partners": "partners.json",
    "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                             R"(",
    "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                             R"("})";
  write_file(dir / "gateway.json", config);

  child_process gateway(
      {mxgw_binary().string(), "serve", "--config", (dir / "gateway.json").string()});
  const std::string started = gateway.wait_for_line("gateway.started");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(started, match, std::regex(R"(127\.0\.0\.1:([0-9]+))"))) << started;
  const auto port = static_cast<std::uint16_t>(std::stoi(match[1]));

  const cli::client_tls tls{dir / "certs" / "ca.pem", dir / "certs" / "vn-gialai.pem",
                            dir / "certs" / "vn-gialai.key"};
  const auto message = read_file(source_dir() / "config" / "examples" / "hotline.tip.json");
  auto result = cli::https_request("localhost", port, tls, "POST", "/v1/messages", message);
  ASSERT_EQ(result.status, 202) << result.body << result.error;

  gateway.signal(SIGTERM);
  EXPECT_FALSE(gateway.wait_for_line("gateway.stopped").empty());
  EXPECT_EQ(gateway.wait(), 0);
  EXPECT_EQ(store::count_messages(dir / "var" / "mxgw.db"), 1u);
}

TEST(ServeProcess, RefusesToStartOnABrokenConfig) {
  temp_dir dir;
  write_file(dir / "gateway.json", R"({"listener": {"port": 99999}, "stray": true})");
  child_process gateway(
      {mxgw_binary().string(), "serve", "--config", (dir / "gateway.json").string()});
  const std::string line = gateway.wait_for_line("/listener/port");
  EXPECT_NE(line.find("gateway.json"), std::string::npos) << line;
  EXPECT_EQ(gateway.wait(), 2);
}

}  // namespace
}  // namespace mxgw::test
