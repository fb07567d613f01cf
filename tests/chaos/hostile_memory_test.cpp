// Hostile documents do not make the gateway's memory balloon: the real `mxgw serve` is fed the
// shapes that amplify most in a parser (deep nesting, hundreds of thousands of tiny values or
// elements, one huge string) in every format it reads, each just under max_body_bytes, and its
// peak resident size (VmHWM) may grow by less than 100 times the largest document. The bound
// is in bytes of memory, never in time.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "gateway/cli/client.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/sealed.hpp"
#include "tests/chaos/gateway_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_body_bytes = 1 << 20;  // the shipped default

// Under AddressSanitizer the gateway (built alike) keeps freed memory in quarantine (256 MiB by
// default) and shadows all of it, so its resident size says nothing about the parsers; there the
// documents are still sent (crashes, leaks and undefined behaviour are what that build checks)
// but the bound is not asserted.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool resident_size_is_meaningful = false;
#else
constexpr bool resident_size_is_meaningful = true;
#endif
constexpr std::size_t document_bytes = max_body_bytes - 4096;

// The peak resident size of process `pid` so far, in bytes (VmHWM).
std::size_t peak_resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stoul(line.substr(6)) * 1024;  // "VmHWM:   12345 kB"
    }
  }
  ADD_FAILURE() << "no VmHWM for " << pid;
  return 0;
}

// `open` + `item` repeated until the document is `size` bytes long + `close`.
std::string repeated(const std::string& open, const std::string& item, const std::string& close,
                     std::size_t size) {
  std::string out = open;
  while (out.size() + item.size() + close.size() < size) {
    out += item;
  }
  out += close;
  return out;
}

struct hostile_document {
  std::string what;
  std::string target;
  std::string content_type;
  std::string body;
};

std::vector<hostile_document> hostile_documents() {
  const std::string json = "application/json";
  const std::string xml = "application/xml";
  std::vector<hostile_document> docs;
  for (const std::string target : {"/v1/messages", "/v1/inbound/kh-cnp"}) {
    docs.push_back({"nested arrays", target, json,
                    std::string(document_bytes / 2, '[') + std::string(document_bytes / 2, ']')});
    docs.push_back({"tiny values", target, json, repeated("[0", ",0", "]", document_bytes)});
    docs.push_back({"empty objects", target, json, repeated("[{}", ",{}", "]", document_bytes)});
    std::string members = "{";
    for (int i = 0; members.size() < document_bytes - 32; ++i) {
      members += (i == 0 ? "\"m" : ",\"m") + std::to_string(i) + "\":0";
    }
    docs.push_back({"many members", target, json, members + "}"});
    docs.push_back(
        {"one long string", target, json,
         "{\"mx\":\"1\",\"narrative\":\"" + std::string(document_bytes - 64, 'x') + "\"}"});
  }
  const std::string xml_head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
  docs.push_back({"nested elements", "/v1/inbound/la-mps", xml,
                  xml_head + repeated("", "<a>", "", document_bytes / 2 - 64) +
                      repeated("", "</a>", "", document_bytes / 2 - 64)});
  docs.push_back({"tiny elements", "/v1/inbound/la-mps", xml,
                  repeated(xml_head + "<Message>", "<a/>", "</Message>", document_bytes)});
  docs.push_back({"many attributes", "/v1/inbound/la-mps", xml, [&] {
                    std::string out = xml_head + "<Message";
                    for (int i = 0; out.size() < document_bytes - 32; ++i) {
                      out += " a" + std::to_string(i) + "=\"\"";
                    }
                    return out + "/>";
                  }()});
  return docs;
}

class HostileMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    for (const char* partner : {"vn-gialai", "kh-ratanakiri", "la-houaphanh"}) {
      identity::certs_issue_partner(dir_ / "certs", partner, dir_ / "certs" / partner);
    }
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp"},
      {"id":"la-houaphanh","name":"Houaphanh police","country":"LA","adapter":"la-mps"}]})");
    store::generate_key_file(dir_ / "store.hex");
    write_file(dir_ / "gateway.json", R"({
      "threads": 2,
      "listener": {"address": "127.0.0.1", "port": 0,
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"]}},
      "store": {"path": "var/mxgw.db",
                "encryption": {"active": "k1", "keys": [{"id": "k1", "file": "store.hex"}]}},
      "delivery": {"enabled": false},
      "partners": "partners.json",
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                          R"(",
      "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                          R"(",
      "translit_dir": ")" + (source_dir() / "config" / "translit").string() +
                                          R"("})");
  }

  cli::client_tls tls_of(const std::string& name) const {
    return {dir_ / "certs" / "ca.pem", dir_ / "certs" / (name + ".pem"),
            dir_ / "certs" / (name + ".key")};
  }

  temp_dir dir_;
};

TEST_F(HostileMemory, PeakMemoryGrowsByLessThanAHundredTimesTheLargestDocument) {
  gateway_process gateway(dir_ / "gateway.json");
  const auto port = gateway.wait_started();
  ASSERT_NE(port, 0) << gateway.tail();
  const auto gialai = tls_of("vn-gialai");
  auto send = [&](const hostile_document& d) {
    const auto& sender = d.target == "/v1/messages"         ? gialai
                         : d.target == "/v1/inbound/kh-cnp" ? tls_of("kh-ratanakiri")
                                                            : tls_of("la-houaphanh");
    return cli::https_request("localhost", port, sender, "POST", d.target, d.body, d.content_type,
                              30s);
  };

  // The baseline: a gateway that has served a valid message and one of each refusal kind, so
  // its pools, TLS buffers and schema caches are warm.
  const std::string example = read_file(source_dir() / "config" / "examples" / "hotline.tip.json");
  ASSERT_EQ(cli::https_request("localhost", port, gialai, "POST", "/v1/messages", example).status,
            202);
  ASSERT_GE(cli::https_request("localhost", port, gialai, "POST", "/v1/messages", "[1]").status,
            400);
  const std::size_t before = peak_resident_bytes(gateway.pid());

  std::size_t largest = 0;
  for (const auto& d : hostile_documents()) {
    ASSERT_LT(d.body.size(), max_body_bytes) << d.what;
    largest = std::max(largest, d.body.size());
    for (int round = 0; round < 2; ++round) {
      const auto r = send(d);
      // Each is refused (never stored), with an answer: the gateway is still there.
      EXPECT_GE(r.status, 400) << d.what << " to " << d.target << ": " << r.error;
      EXPECT_LT(r.status, 500) << d.what << " to " << d.target << ": " << r.body;
    }
  }
  const std::size_t after = peak_resident_bytes(gateway.pid());
  const std::size_t growth = after > before ? after - before : 0;
  if (resident_size_is_meaningful) {
    EXPECT_LT(growth, 100 * largest) << "peak resident size grew from " << before << " to " << after
                                     << " bytes for documents of at most " << largest << " bytes";
  }
  // Still serving.
  EXPECT_EQ(cli::https_request("localhost", port, gialai, "GET", "/healthz").status, 200);
  RecordProperty("peak_growth_bytes", std::to_string(growth));
}

}  // namespace
}  // namespace mxgw::test
