// The TLS profile, checked from outside by a real scanner (Debian's sslscan) against a running
// listener: no protocol below TLS 1.2, only AEAD suites with forward secrecy, no compression, no
// renegotiation. The default listener (TLS 1.3 only) and one configured for 1.2 are both scanned.
// (sslscan built against Debian's OpenSSL 3, which has no TLS compression, reports no compression
// element; the listener also sets SSL_OP_NO_COMPRESSION. Should a report carry one, it is judged.)
#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

struct scan_result {
  std::vector<std::string> enabled_protocols;   // e.g. "TLSv1.3"
  std::vector<std::string> accepted_suites;     // "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"
  std::vector<std::string> problems;            // what breaks the profile
  bool scanned = false;
};

std::string attribute(xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) {
    return {};
  }
  std::string out(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return out;
}

bool is_aead(const std::string& suite) {
  return suite.find("GCM") != std::string::npos || suite.find("CHACHA20") != std::string::npos ||
         suite.find("CCM") != std::string::npos;
}

/// Runs sslscan with the partner's client certificate and judges its XML report.
scan_result scan(const std::filesystem::path& dir, std::uint16_t port, const cli::client_tls& tls) {
  scan_result result;
  const auto report = dir / "sslscan.xml";
  const std::string command = "sslscan --no-colour --no-heartbleed --certs=" + tls.cert.string() +
                              " --pk=" + tls.key.string() + " --xml=" + report.string() +
                              " 127.0.0.1:" + std::to_string(port) + " > " +
                              (dir / "sslscan.out").string() + " 2>&1";
  const int rc = std::system(command.c_str());
  if (rc != 0) {
    ADD_FAILURE() << "sslscan failed (is the Debian package installed? scripts/setup.sh installs it): "
                  << read_file(dir / "sslscan.out");
    return result;
  }
  xmlDoc* doc = xmlReadFile(report.c_str(), nullptr, XML_PARSE_NONET);
  if (doc == nullptr) {
    ADD_FAILURE() << "sslscan wrote no readable XML report";
    return result;
  }
  result.scanned = true;
  xmlNode* root = xmlDocGetRootElement(doc);
  for (xmlNode* test = root != nullptr ? root->children : nullptr; test != nullptr;
       test = test->next) {
    if (test->type != XML_ELEMENT_NODE) {
      continue;
    }
    for (xmlNode* n = test->children; n != nullptr; n = n->next) {
      if (n->type != XML_ELEMENT_NODE) {
        continue;
      }
      const std::string name(reinterpret_cast<const char*>(n->name));
      if (name == "protocol" && attribute(n, "enabled") == "1") {
        const std::string version = attribute(n, "type") + attribute(n, "version");
        result.enabled_protocols.push_back(version);
        if (version != "tls1.2" && version != "tls1.3") {
          result.problems.push_back("protocol enabled: " + version);
        }
      } else if (name == "cipher" && attribute(n, "status") != "") {
        const std::string protocol = attribute(n, "sslversion");
        const std::string suite = attribute(n, "cipher");
        result.accepted_suites.push_back(protocol + " " + suite);
        if (protocol != "TLSv1.2" && protocol != "TLSv1.3") {
          result.problems.push_back("suite on " + protocol + ": " + suite);
        }
        if (!is_aead(suite)) {
          result.problems.push_back("not an AEAD suite: " + suite);
        }
        // TLS 1.3 suites are always forward secret; a 1.2 suite must use ephemeral (EC)DH.
        if (protocol == "TLSv1.2" && suite.rfind("ECDHE-", 0) != 0 && suite.rfind("DHE-", 0) != 0) {
          result.problems.push_back("not forward secret: " + suite);
        }
      } else if (name == "compression" && attribute(n, "supported") != "0") {
        result.problems.push_back("TLS compression supported");
      } else if (name == "renegotiation" && attribute(n, "supported") != "0") {
        result.problems.push_back("renegotiation supported");
      }
    }
  }
  xmlFreeDoc(doc);
  return result;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += "\n  " + item;
  }
  return out;
}

class DefaultProfile : public gateway_fixture {};

TEST_F(DefaultProfile, OnlyTls13WithAeadSuites) {
  const scan_result r = scan(dir_.path(), port_, partner_client("vn-gialai"));
  ASSERT_TRUE(r.scanned);
  EXPECT_TRUE(r.problems.empty()) << joined(r.problems) << "\n" << read_file(dir_ / "sslscan.xml");
  EXPECT_EQ(r.enabled_protocols, std::vector<std::string>{"tls1.3"}) << joined(r.enabled_protocols);
  ASSERT_FALSE(r.accepted_suites.empty());
  for (const auto& suite : r.accepted_suites) {
    EXPECT_EQ(suite.rfind("TLSv1.3 ", 0), 0U) << suite;
  }
}

class Tls12Profile : public gateway_fixture {
  void configure(config::gateway_config& config) override {
    config.listener.tls.min_version = "1.2";
  }
};

TEST_F(Tls12Profile, Tls12OnlyWithEcdheAndAead) {
  const scan_result r = scan(dir_.path(), port_, partner_client("vn-gialai"));
  ASSERT_TRUE(r.scanned);
  EXPECT_TRUE(r.problems.empty()) << joined(r.problems) << "\n" << read_file(dir_ / "sslscan.xml");
  EXPECT_EQ(r.enabled_protocols, (std::vector<std::string>{"tls1.2", "tls1.3"}))
      << joined(r.enabled_protocols);
  bool any_12 = false;
  for (const auto& suite : r.accepted_suites) {
    any_12 = any_12 || suite.rfind("TLSv1.2 ", 0) == 0;
  }
  EXPECT_TRUE(any_12) << "no TLS 1.2 suite accepted:" << joined(r.accepted_suites);
}

}  // namespace
}  // namespace mxgw::test
