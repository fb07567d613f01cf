// Who gets service: only a valid, unrevoked, clientAuth certificate from the partner CA that maps
// to exactly one enabled partner. Everything else is refused in the TLS handshake.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include "gateway/net/tls_context.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/integration/raw_tls_client.hpp"

namespace mxgw::test {
namespace {

// A CRL of `ca` past its nextUpdate, listing nothing (made with OpenSSL itself: cert_authority
// makes only current ones).
std::string stale_crl(const identity::cert_authority& ca) {
  const std::string cert_pem = ca.cert_pem();
  const std::string key_pem = ca.key_pem();
  BIO* cert_bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  BIO* key_bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  X509_CRL* crl = X509_CRL_new();
  ASN1_TIME* last = X509_time_adj_ex(nullptr, -2, 0, nullptr);
  ASN1_TIME* next = X509_time_adj_ex(nullptr, -1, 0, nullptr);
  std::string out;
  if (cert != nullptr && key != nullptr && crl != nullptr && X509_CRL_set_version(crl, 1) == 1 &&
      X509_CRL_set_issuer_name(crl, X509_get_subject_name(cert)) == 1 &&
      X509_CRL_set1_lastUpdate(crl, last) == 1 && X509_CRL_set1_nextUpdate(crl, next) == 1 &&
      X509_CRL_sign(crl, key, EVP_sha256()) > 0) {
    BIO* mem = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_CRL(mem, crl);
    char* data = nullptr;
    const long size = BIO_get_mem_data(mem, &data);
    out.assign(data, static_cast<std::size_t>(size));
    BIO_free(mem);
  }
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
  EVP_PKEY_free(key);
  X509_free(cert);
  BIO_free(key_bio);
  BIO_free(cert_bio);
  EXPECT_FALSE(out.empty()) << "could not make a stale CRL";
  return out;
}

class TlsIdentity : public gateway_fixture {
 protected:
  identity::certificate_request partner_request(const std::string& id) {
    identity::certificate_request req;
    req.common_name = id;
    req.san_uris = {"urn:mxgw:partner:" + id};
    return req;
  }

  /// A valid certificate of vn-gialai written to NAME.pem/.key, with its serial (for a CRL).
  std::pair<cli::client_tls, std::string> gialai_with_serial(const std::string& name) {
    const auto issued = ca_->issue(partner_request("vn-gialai"));
    write_file(dir_ / (name + ".pem"), issued.cert_pem);
    identity::write_file_with_mode(dir_ / (name + ".key"), issued.key_pem, 0600);
    return {{dir_ / "ca.pem", dir_ / (name + ".pem"), dir_ / (name + ".key")}, issued.serial_hex};
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
  const auto [tls, serial] = gialai_with_serial("revoked");
  ASSERT_EQ(get(tls, "/healthz").status, 200);  // served before it is revoked
  write_file(dir_ / "crl.pem", ca_->make_crl({{serial}}));
  restart();
  expect_no_service(tls);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);  // others unaffected
}

// An open connection, through the handshake and one request, kept alive. Reads give up after
// ten seconds (a test of a connection that should have been closed fails instead of hanging).
struct kept_connection {
  kept_connection(const cli::client_tls& tls, std::uint16_t port) : client(ioc, tls, port) {
    const timeval limit{10, 0};
    setsockopt(client.stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit,
               sizeof limit);
  }
  /// One GET /healthz; the answer's first line ("" when the connection is gone).
  std::string healthz() {
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    boost::system::error_code ec;
    boost::asio::write(client.stream, boost::asio::buffer(request), ec);
    if (ec) {
      return {};
    }
    std::string answer(512, '\0');
    const std::size_t n = client.stream.read_some(boost::asio::buffer(answer), ec);
    return ec ? std::string()
              : answer.substr(
                    0, answer.find("\r\n", 0) == std::string::npos ? n : answer.find("\r\n"));
  }
  /// True when the gateway closed the connection (end of stream or reset).
  bool closed_by_gateway() {
    char byte = 0;
    boost::system::error_code ec;
    client.stream.read_some(boost::asio::buffer(&byte, 1), ec);
    return ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again;
  }
  boost::asio::io_context ioc;
  raw_tls_client client;
};

TEST_F(TlsIdentity, ACrlReloadRefusesARevokedCertificateAndClosesItsOpenConnection) {
  const auto [tls, serial] = gialai_with_serial("revoked");
  kept_connection open(tls, port_);
  ASSERT_EQ(open.healthz(), "HTTP/1.1 200 OK");
  kept_connection other(partner_client("vn-gialai"), port_);
  ASSERT_EQ(other.healthz(), "HTTP/1.1 200 OK");

  // The CA revokes the certificate; the operator puts the new CRL in place and reloads.
  write_file(dir_ / "crl.pem", ca_->make_crl({{serial}}));
  EXPECT_TRUE(gateway_->reload().empty());
  EXPECT_TRUE(open.closed_by_gateway());
  expect_no_service(tls);
  EXPECT_EQ(other.healthz(), "HTTP/1.1 200 OK");  // others are not disturbed
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);

  // The next CRL no longer lists it (a hold released): served again after the next reload.
  write_file(dir_ / "crl.pem", ca_->make_crl({}));
  EXPECT_TRUE(gateway_->reload().empty());
  EXPECT_EQ(get(tls, "/healthz").status, 200);
  stop();
  EXPECT_NE(log_text().find("\"reason\":\"certificate-revoked-crl\""), std::string::npos);
  EXPECT_NE(log_text().find("1 open connections refused by the new CRLs closed"),
            std::string::npos);
}

TEST_F(TlsIdentity, ACrlReloadThatCannotBeTrustedChangesNothing) {
  const auto [tls, serial] = gialai_with_serial("listed");
  kept_connection open(tls, port_);
  ASSERT_EQ(open.healthz(), "HTTP/1.1 200 OK");
  const auto now = std::chrono::system_clock::now();
  const auto rogue = identity::cert_authority::create("mxgw test CA", now - std::chrono::hours(1),
                                                      now + std::chrono::hours(24));
  const std::vector<std::string> refused = {
      rogue.make_crl({{serial}}),  // same issuer name, another key: a forgery
      "not a CRL\n", ca_->make_crl({{serial}}).substr(0, 200),  // cut short
  };
  for (const auto& text : refused) {
    write_file(dir_ / "crl.pem", text);
    // Named once for each check that reads the file: the listener's and the delivery client's.
    const auto problems = gateway_->reload();
    ASSERT_EQ(problems.size(), 2U) << text;
    for (const auto& problem : problems) {
      EXPECT_EQ(problem.file, (dir_ / "crl.pem").string());
    }
    EXPECT_EQ(open.healthz(), "HTTP/1.1 200 OK") << problems[0].reason;  // still open
    EXPECT_EQ(get(tls, "/healthz").status, 200) << problems[0].reason;   // the old CRL stands
  }
  EXPECT_NE(gateway_->reload()[0].reason.find("holds no CRL"), std::string::npos);
  write_file(dir_ / "crl.pem", refused[0]);
  EXPECT_NE(gateway_->reload()[0].reason.find("not signed by any of the trust anchors"),
            std::string::npos);
  // The same forgery at start stops the listener from starting.
  EXPECT_THROW(net::make_server_context(config_.listener.tls, [](X509*, X509*) { return std::string(); }),
               std::runtime_error);
}

TEST_F(TlsIdentity, AStaleCrlIsLoggedAndItsIssuersCertificatesAreRefused) {
  write_file(dir_ / "crl.pem", stale_crl(*ca_));
  EXPECT_TRUE(gateway_->reload().empty());  // what the operator gave is in force
  expect_no_service(partner_client("vn-gialai"));
  stop();
  const std::string log = log_text();
  EXPECT_NE(log.find("\"event\":\"tls.crl_stale\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"reason\":\"crl-expired\""), std::string::npos) << log;
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
