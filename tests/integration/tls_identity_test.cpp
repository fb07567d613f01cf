// Who gets service: only a valid, unrevoked, clientAuth certificate from the partner CA that maps
// to exactly one enabled partner. Everything else is refused in the TLS handshake.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class TlsIdentity : public gateway_fixture {
 protected:
  identity::certificate_request partner_request(const std::string& id) {
    identity::certificate_request req;
    req.common_name = id;
    req.san_uris = {"urn:mxgw:partner:" + id};
    return req;
  }

  // A refused client: no HTTP answer at all, and nothing reached the store.
  void expect_no_service(const cli::client_tls& tls) {
    const auto before = stored_messages();
    auto result =
        post(tls, example("victim.identification", "11111111-2222-4333-8444-555555555555"));
    EXPECT_EQ(result.status, 0) << result.body;
    EXPECT_FALSE(result.error.empty());
    EXPECT_EQ(stored_messages(), before);
  }
};

TEST_F(TlsIdentity, ValidPartnerIsServed) {
  auto result = get(partner_client("vn-gialai"), "/healthz");
  EXPECT_EQ(result.status, 200) << result.error;
}

TEST_F(TlsIdentity, NoClientCertificateGetsNoService) {
  expect_no_service({dir_ / "ca.pem", {}, {}});
}

TEST_F(TlsIdentity, CertificateFromUnknownCaGetsNoService) {
  const auto now = std::chrono::system_clock::now();
  auto rogue = identity::cert_authority::create("rogue CA", now - std::chrono::hours(1),
                                                now + std::chrono::hours(24));
  expect_no_service(make_client("rogue", partner_request("vn-gialai"), &rogue));
}

TEST_F(TlsIdentity, ExpiredCertificateGetsNoService) {
  auto req = partner_request("vn-gialai");
  req.not_before = std::chrono::system_clock::now() - std::chrono::hours(48);
  req.not_after = std::chrono::system_clock::now() - std::chrono::hours(24);
  expect_no_service(make_client("expired", req));
}

TEST_F(TlsIdentity, NotYetValidCertificateGetsNoService) {
  auto req = partner_request("vn-gialai");
  req.not_before = std::chrono::system_clock::now() + std::chrono::hours(24);
  req.not_after = std::chrono::system_clock::now() + std::chrono::hours(48);
  expect_no_service(make_client("future", req));
}

TEST_F(TlsIdentity, CertificateWithoutClientAuthGetsNoService) {
  auto req = partner_request("vn-gialai");
  req.client_auth = false;
  req.server_auth = true;
  expect_no_service(make_client("server-only", req));
}

TEST_F(TlsIdentity, CertificateWithoutAnyExtendedKeyUsageGetsNoService) {
  auto req = partner_request("vn-gialai");
  req.omit_extended_key_usage = true;
  expect_no_service(make_client("no-eku", req));
}

TEST_F(TlsIdentity, RevokedCertificateGetsNoService) {
  auto req = partner_request("vn-gialai");
  const auto issued = ca_->issue(req);
  write_file(dir_ / "revoked.pem", issued.cert_pem);
  identity::write_file_with_mode(dir_ / "revoked.key", issued.key_pem, 0600);
  const cli::client_tls tls{dir_ / "ca.pem", dir_ / "revoked.pem", dir_ / "revoked.key"};
  ASSERT_EQ(get(tls, "/healthz").status, 200);  // served before it is revoked
  write_file(dir_ / "crl.pem", ca_->make_crl({{issued.serial_hex}}));
  restart();
  expect_no_service(tls);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);  // others unaffected
}

TEST_F(TlsIdentity, ValidCertificateOfUnknownPartnerGetsNoService) {
  expect_no_service(make_client("stranger", partner_request("th-nobody")));
}

TEST_F(TlsIdentity, ValidCertificateOfDisabledPartnerGetsNoService) {
  expect_no_service(make_client("disabled", partner_request("la-houaphanh")));
}

TEST_F(TlsIdentity, CertificateNamingTwoPartnersGetsNoService) {
  auto req = partner_request("vn-gialai");
  req.san_uris.push_back("urn:mxgw:partner:kh-ratanakiri");
  expect_no_service(make_client("two-names", req));
}

TEST_F(TlsIdentity, CertificateWithoutPartnerIdentityGetsNoService) {
  identity::certificate_request req;
  req.common_name = "vn-gialai";  // a common name is not an identity
  expect_no_service(make_client("cn-only", req));
}

TEST_F(TlsIdentity, RefusalsAreLoggedWithAReason) {
  expect_no_service(make_client("stranger", partner_request("th-nobody")));
  stop();
  EXPECT_NE(log_text().find("\"reason\":\"unknown-partner\""), std::string::npos);
}

}  // namespace
}  // namespace mxgw::test
