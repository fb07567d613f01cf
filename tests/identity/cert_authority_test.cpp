// Tests of the development CA: issued certificates checked with OpenSSL's own verifier.
#include "gateway/identity/cert_authority.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <array>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

namespace mxgw::identity {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

template <auto free_fn>
struct openssl_deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    free_fn(p);
  }
};
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<&BIO_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<&X509_free>>;
using crl_ptr = std::unique_ptr<X509_CRL, openssl_deleter<&X509_CRL_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<&EVP_PKEY_free>>;
using store_ptr = std::unique_ptr<X509_STORE, openssl_deleter<&X509_STORE_free>>;
using store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, openssl_deleter<&X509_STORE_CTX_free>>;
using names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_deleter<&GENERAL_NAMES_free>>;
using octets_ptr = std::unique_ptr<ASN1_OCTET_STRING, openssl_deleter<&ASN1_OCTET_STRING_free>>;
using akid_ptr = std::unique_ptr<AUTHORITY_KEYID, openssl_deleter<&AUTHORITY_KEYID_free>>;
using basic_ptr = std::unique_ptr<BASIC_CONSTRAINTS, openssl_deleter<&BASIC_CONSTRAINTS_free>>;
using integer_ptr = std::unique_ptr<ASN1_INTEGER, openssl_deleter<&ASN1_INTEGER_free>>;

bio_ptr bio_of(const std::string& text) {
  return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

x509_ptr parse_cert(const std::string& pem) {
  auto bio = bio_of(pem);
  x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_NE(cert, nullptr) << "not a PEM certificate";
  return cert;
}

crl_ptr parse_crl(const std::string& pem) {
  auto bio = bio_of(pem);
  crl_ptr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_NE(crl, nullptr) << "not a PEM CRL";
  return crl;
}

pkey_ptr parse_key(const std::string& pem) {
  auto bio = bio_of(pem);
  pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_NE(key, nullptr) << "not a PEM private key";
  return key;
}

struct verify_options {
  int purpose = X509_PURPOSE_SSL_CLIENT;
  std::string crl_pem;  // non-empty: add it and check revocation of the leaf
  std::string host;
  std::string ip;
  std::optional<system_clock::time_point> at;  // verification time; the current time if unset
};

/// Runs X509_verify_cert of `leaf_pem` against the CA alone; returns the X509_V_* result.
int verify(const std::string& ca_pem, const std::string& leaf_pem,
           const verify_options& opts = {}) {
  store_ptr store(X509_STORE_new());
  auto ca = parse_cert(ca_pem);
  EXPECT_EQ(X509_STORE_add_cert(store.get(), ca.get()), 1);
  if (!opts.crl_pem.empty()) {
    auto crl = parse_crl(opts.crl_pem);
    EXPECT_EQ(X509_STORE_add_crl(store.get(), crl.get()), 1);
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  }
  auto leaf = parse_cert(leaf_pem);
  store_ctx_ptr ctx(X509_STORE_CTX_new());
  EXPECT_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr), 1);
  EXPECT_EQ(X509_STORE_CTX_set_purpose(ctx.get(), opts.purpose), 1);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  if (!opts.host.empty()) {
    X509_VERIFY_PARAM_set1_host(param, opts.host.c_str(), 0);
  }
  if (!opts.ip.empty()) {
    X509_VERIFY_PARAM_set1_ip_asc(param, opts.ip.c_str());
  }
  if (opts.at) {
    X509_VERIFY_PARAM_set_time(param, system_clock::to_time_t(*opts.at));
  }
  const int ok = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (ok == 1) {
    EXPECT_EQ(error, X509_V_OK);
  } else {
    EXPECT_NE(error, X509_V_OK);
  }
  return error;
}

std::vector<std::string> san_uris(const X509* cert) {
  names_ptr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  std::vector<std::string> out;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_URI) {
      const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                       static_cast<std::size_t>(ASN1_STRING_length(uri)));
    }
  }
  return out;
}

std::string hex_of(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 0x0f];
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

unsigned mode_of(const std::filesystem::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<unsigned>(st.st_mode) & 07777U;
}

bool is_revoked_in(const std::string& crl_pem, const std::string& serial_hex) {
  auto crl = parse_crl(crl_pem);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; revoked != nullptr && i < sk_X509_REVOKED_num(revoked); ++i) {
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
    BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
    char* hex = BN_bn2hex(bn);
    const bool match = serial_hex == hex;
    OPENSSL_free(hex);
    BN_free(bn);
    if (match) {
      return true;
    }
  }
  return false;
}

cert_authority make_ca() {
  const auto now = system_clock::now();
  return cert_authority::create("test CA", now - hours(1), now + hours(24 * 30));
}

certificate_request partner_request(const std::string& id) {
  certificate_request request;
  request.common_name = id;
  request.san_uris = {"urn:mxgw:partner:" + id};
  return request;
}

// ---------------------------------------------------------------------------------------------
// cert_authority

TEST(CertAuthority, IssuedClientCertVerifiesForSslClient) {
  const auto ca = make_ca();
  const auto issued = ca.issue(partner_request("kh-ratanakiri"));
  EXPECT_EQ(verify(ca.cert_pem(), issued.cert_pem), X509_V_OK);
}

TEST(CertAuthority, IssuedCertCarriesSanUri) {
  const auto ca = make_ca();
  const auto issued = ca.issue(partner_request("la-champasak"));
  auto cert = parse_cert(issued.cert_pem);
  EXPECT_EQ(san_uris(cert.get()), std::vector<std::string>{"urn:mxgw:partner:la-champasak"});
}

TEST(CertAuthority, IssuedCertHasExpectedStructure) {
  const auto ca = make_ca();
  const auto issued = ca.issue(partner_request("vn-gia-lai"));
  auto cert = parse_cert(issued.cert_pem);
  auto ca_cert = parse_cert(ca.cert_pem());

  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);

  // Serial: positive, 128 bits, reported as upper-case hex.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);  // not V_ASN1_NEG_INTEGER
  EXPECT_EQ(issued.serial_hex.size(), 32U);
  for (const char c : issued.serial_hex) {
    EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(c)) || (c >= 'A' && c <= 'F'));
  }

  // basicConstraints CA:FALSE and keyUsage, both critical.
  int critical = -1;
  basic_ptr basic(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert.get(), NID_basic_constraints, &critical, nullptr)));
  ASSERT_NE(basic, nullptr);
  EXPECT_EQ(critical, 1);
  EXPECT_EQ(basic->ca, 0);
  const int ku_index = X509_get_ext_by_NID(cert.get(), NID_key_usage, -1);
  ASSERT_GE(ku_index, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(cert.get(), ku_index)), 1);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));

  // subjectKeyIdentifier, and authorityKeyIdentifier equal to the CA's subjectKeyIdentifier.
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert.get());
  ASSERT_NE(ski, nullptr);
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert.get());
  const ASN1_OCTET_STRING* ca_ski = X509_get0_subject_key_id(ca_cert.get());
  ASSERT_NE(aki, nullptr);
  ASSERT_NE(ca_ski, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, ca_ski), 0);
  EXPECT_NE(ASN1_OCTET_STRING_cmp(ski, ca_ski), 0);

  // The key: PKCS#8 PEM, EC P-256, matching the certificate.
  EXPECT_NE(issued.key_pem.find("-----BEGIN "
                                "PRIVATE KEY-----"),
            std::string::npos);
  auto key = parse_key(issued.key_pem);
  ASSERT_NE(key, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  std::array<char, 64> group{};
  std::size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group.data(), group.size(), &group_len), 1);
  EXPECT_EQ(std::string(group.data(), group_len), "prime256v1");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
}

TEST(CertAuthority, CaCertificateIsSelfSignedCa) {
  const auto ca = make_ca();
  auto cert = parse_cert(ca.cert_pem());
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get_extension_flags(cert.get()) & EXFLAG_SS, 0U);
  EXPECT_EQ(verify(ca.cert_pem(), ca.cert_pem(), {.purpose = X509_PURPOSE_ANY}), X509_V_OK);
}

TEST(CertAuthority, ExtendedKeyUsageFollowsRequest) {
  const auto ca = make_ca();

  auto request = partner_request("kh-kratie");
  auto client = parse_cert(ca.issue(request).cert_pem);
  ASSERT_NE(X509_get_extension_flags(client.get()) & EXFLAG_XKUSAGE, 0U);
  EXPECT_EQ(X509_get_extended_key_usage(client.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));

  request.server_auth = true;
  auto both = parse_cert(ca.issue(request).cert_pem);
  EXPECT_EQ(X509_get_extended_key_usage(both.get()),
            static_cast<uint32_t>(XKU_SSL_CLIENT | XKU_SSL_SERVER));

  request.omit_extended_key_usage = true;
  auto none = parse_cert(ca.issue(request).cert_pem);
  EXPECT_EQ(X509_get_extension_flags(none.get()) & EXFLAG_XKUSAGE, 0U);
  EXPECT_LT(X509_get_ext_by_NID(none.get(), NID_ext_key_usage, -1), 0);

  request.omit_extended_key_usage = false;
  request.client_auth = false;
  const auto server_only = ca.issue(request);
  EXPECT_EQ(verify(ca.cert_pem(), server_only.cert_pem), X509_V_ERR_INVALID_PURPOSE);
  EXPECT_EQ(verify(ca.cert_pem(), server_only.cert_pem, {.purpose = X509_PURPOSE_SSL_SERVER}),
            X509_V_OK);

  request.server_auth = false;
  EXPECT_THROW(ca.issue(request), cert_error);  // asks for EKU but names no usage
}

TEST(CertAuthority, ExpiredCertificateFailsVerification) {
  const auto ca = make_ca();
  auto request = partner_request("th-ubon");
  const auto now = system_clock::now();
  request.not_before = now - hours(48);
  request.not_after = now - hours(24);
  const auto issued = ca.issue(request);
  EXPECT_EQ(verify(ca.cert_pem(), issued.cert_pem), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(CertAuthority, NotYetValidCertificateFailsVerification) {
  const auto ca = make_ca();
  auto request = partner_request("th-ubon");
  const auto now = system_clock::now();
  request.not_before = now + hours(24);
  request.not_after = now + hours(48);
  EXPECT_EQ(verify(ca.cert_pem(), ca.issue(request).cert_pem), X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST(CertAuthority, RefusesInvertedValidityAndBadSans) {
  const auto ca = make_ca();
  auto request = partner_request("th-ubon");
  request.not_after = request.not_before - hours(1);
  EXPECT_THROW(ca.issue(request), cert_error);

  request = partner_request("th-ubon");
  request.san_ips = {"300.1.1.1"};
  EXPECT_THROW(ca.issue(request), cert_error);

  request = partner_request("th-ubon");
  request.san_dns = {"bad name"};
  EXPECT_THROW(ca.issue(request), cert_error);

  request = partner_request("th-ubon");
  request.common_name.clear();
  EXPECT_THROW(ca.issue(request), cert_error);
}

TEST(CertAuthority, RevokedSerialFailsWithCrlCheck) {
  const auto ca = make_ca();
  const auto revoked = ca.issue(partner_request("kh-stung-treng"));
  const auto kept = ca.issue(partner_request("kh-mondulkiri"));
  const std::string crl = ca.make_crl({revoked_entry{revoked.serial_hex, system_clock::now()}});

  EXPECT_EQ(verify(ca.cert_pem(), revoked.cert_pem, {.crl_pem = crl}), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(ca.cert_pem(), kept.cert_pem, {.crl_pem = crl}), X509_V_OK);
  // An empty CRL still satisfies CRL checking.
  EXPECT_EQ(verify(ca.cert_pem(), revoked.cert_pem, {.crl_pem = ca.make_crl({})}), X509_V_OK);
}

TEST(CertAuthority, CrlHasExpectedStructure) {
  const auto ca = make_ca();
  const auto issued = ca.issue(partner_request("la-attapeu"));
  const auto before = system_clock::now();
  const std::string pem = ca.make_crl({revoked_entry{lower(issued.serial_hex), before}}, hours(48));
  auto crl = parse_crl(pem);
  auto ca_cert = parse_cert(ca.cert_pem());

  EXPECT_EQ(X509_CRL_get_version(crl.get()), X509_CRL_VERSION_2);
  EXPECT_EQ(X509_CRL_get_signature_nid(crl.get()), NID_ecdsa_with_SHA256);
  pkey_ptr ca_key(X509_get_pubkey(ca_cert.get()));
  EXPECT_EQ(X509_CRL_verify(crl.get(), ca_key.get()), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca_cert.get())), 0);

  integer_ptr number(static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  EXPECT_NE(number, nullptr);
  akid_ptr akid(static_cast<AUTHORITY_KEYID*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_authority_key_identifier, nullptr, nullptr)));
  ASSERT_NE(akid, nullptr);
  ASSERT_NE(akid->keyid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca_cert.get())), 0);

  // lastUpdate is backdated by five minutes; nextUpdate is 48 hours after the CRL was made.
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_CRL_get0_lastUpdate(crl.get()),
                           X509_CRL_get0_nextUpdate(crl.get())),
            1);
  EXPECT_EQ(days, 2);
  EXPECT_EQ(seconds, 300);
  auto four_minutes_before = system_clock::to_time_t(before - std::chrono::minutes(4));
  EXPECT_EQ(X509_cmp_time(X509_CRL_get0_lastUpdate(crl.get()), &four_minutes_before), -1);
  EXPECT_TRUE(is_revoked_in(pem, issued.serial_hex));
}

// A verifier whose clock is a little behind ours (another machine, or OpenSSL's own time(), which
// reads the coarse clock) must accept a CRL made this instant, not call it "not yet valid".
TEST(CertAuthority, FreshCrlIsValidForAVerifierWhoseClockIsBehind) {
  const auto ca = make_ca();
  const auto kept = ca.issue(partner_request("la-bokeo"));
  const auto revoked = ca.issue(partner_request("la-luangnamtha"));
  const std::string pem =
      ca.make_crl({revoked_entry{revoked.serial_hex, system_clock::now()}}, hours(48));
  const auto behind = system_clock::now() - std::chrono::minutes(2);
  EXPECT_EQ(verify(ca.cert_pem(), kept.cert_pem, {.crl_pem = pem, .at = behind}), X509_V_OK);
  EXPECT_EQ(verify(ca.cert_pem(), revoked.cert_pem, {.crl_pem = pem, .at = behind}),
            X509_V_ERR_CERT_REVOKED);
}

TEST(CertAuthority, FingerprintIsSha256OfDer) {
  const auto ca = make_ca();
  const auto issued = ca.issue(partner_request("vn-kon-tum"));
  auto cert = parse_cert(issued.cert_pem);
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(cert.get(), &der);
  ASSERT_GT(der_len, 0);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  ASSERT_EQ(
      EVP_Digest(der, static_cast<std::size_t>(der_len), md.data(), &md_len, EVP_sha256(), nullptr),
      1);
  OPENSSL_free(der);
  const std::string expected = hex_of(md.data(), md_len);
  EXPECT_EQ(expected.size(), 64U);
  EXPECT_EQ(issued.sha256_fingerprint, expected);
  EXPECT_EQ(sha256_fingerprint_of_pem(issued.cert_pem), expected);
  EXPECT_THROW(sha256_fingerprint_of_pem("not a certificate"), cert_error);
}

TEST(CertAuthority, LoadRoundTripsAndIssuesVerifiableCerts) {
  test::temp_dir dir;
  const auto ca = make_ca();
  test::write_file(dir / "ca.pem", ca.cert_pem());
  test::write_file(dir / "ca.key", ca.key_pem());
  const auto loaded = cert_authority::load(dir / "ca.pem", dir / "ca.key");
  EXPECT_EQ(loaded.cert_pem(), ca.cert_pem());
  const auto issued = loaded.issue(partner_request("kh-preah-vihear"));
  EXPECT_EQ(verify(ca.cert_pem(), issued.cert_pem), X509_V_OK);
}

TEST(CertAuthority, LoadRejectsMismatchedKeyAndCert) {
  test::temp_dir dir;
  const auto first = make_ca();
  const auto second = make_ca();
  test::write_file(dir / "ca.pem", first.cert_pem());
  test::write_file(dir / "other.key", second.key_pem());
  EXPECT_THROW(cert_authority::load(dir / "ca.pem", dir / "other.key"), cert_error);
}

TEST(CertAuthority, LoadRejectsMissingOrGarbageFiles) {
  test::temp_dir dir;
  const auto ca = make_ca();
  test::write_file(dir / "ca.pem", ca.cert_pem());
  test::write_file(dir / "garbage.key", "not a key\n");
  EXPECT_THROW(cert_authority::load(dir / "ca.pem", dir / "missing.key"), cert_error);
  EXPECT_THROW(cert_authority::load(dir / "ca.pem", dir / "garbage.key"), cert_error);
  try {
    cert_authority::load(dir / "missing.pem", dir / "garbage.key");
    FAIL() << "expected cert_error";
  } catch (const cert_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
}

TEST(CertAuthority, LoadRejectsLeafCertificateAsCa) {
  test::temp_dir dir;
  const auto ca = make_ca();
  const auto issued = ca.issue(partner_request("kh-takeo"));
  test::write_file(dir / "leaf.pem", issued.cert_pem);
  test::write_file(dir / "leaf.key", issued.key_pem);
  EXPECT_THROW(cert_authority::load(dir / "leaf.pem", dir / "leaf.key"), cert_error);
}

// ---------------------------------------------------------------------------------------------
// write_file_with_mode

TEST(WriteFileWithMode, WritesWithExactModeAndReplacesAtomically) {
  test::temp_dir dir;
  const auto path = dir / "secret.key";
  write_file_with_mode(path, "first", 0600);
  EXPECT_EQ(test::read_file(path), "first");
  EXPECT_EQ(mode_of(path), 0600U);
  write_file_with_mode(path, "second", 0644);
  EXPECT_EQ(test::read_file(path), "second");
  EXPECT_EQ(mode_of(path), 0644U);
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
  }
  EXPECT_EQ(entries, 1) << "a temporary file was left behind";
  EXPECT_THROW(write_file_with_mode(dir / "no-such-dir" / "x", "x", 0600), cert_error);
}

// ---------------------------------------------------------------------------------------------
// certs_* (the on-disk directory behind `mxgw certs`)

TEST(CertsDir, InitCreatesTrustStore) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});

  EXPECT_EQ(mode_of(dir), 0700U);
  EXPECT_EQ(mode_of(dir / "ca.key"), 0600U);
  EXPECT_EQ(mode_of(dir / "server.key"), 0600U);
  for (const char* name : {"ca.pem", "server.pem", "crl.pem", "issued.json"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / name)) << name;
  }
  const std::string ca_pem = test::read_file(dir / "ca.pem");
  const std::string server_pem = test::read_file(dir / "server.pem");
  auto server = parse_cert(server_pem);
  auto server_key = parse_key(test::read_file(dir / "server.key"));
  EXPECT_EQ(X509_check_private_key(server.get(), server_key.get()), 1);
  EXPECT_NE(test::read_file(dir / "ca.key")
                .find("-----BEGIN "
                      "PRIVATE KEY-----"),
            std::string::npos);

  // The server certificate serves localhost over IPv4 and IPv6, and is also a client certificate.
  EXPECT_EQ(verify(ca_pem, server_pem, {.purpose = X509_PURPOSE_SSL_SERVER, .host = "localhost"}),
            X509_V_OK);
  EXPECT_EQ(verify(ca_pem, server_pem, {.purpose = X509_PURPOSE_SSL_SERVER, .ip = "127.0.0.1"}),
            X509_V_OK);
  EXPECT_EQ(verify(ca_pem, server_pem, {.purpose = X509_PURPOSE_SSL_SERVER, .ip = "::1"}),
            X509_V_OK);
  EXPECT_EQ(verify(ca_pem, server_pem, {.purpose = X509_PURPOSE_SSL_SERVER, .host = "example.org"}),
            X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(verify(ca_pem, server_pem, {.purpose = X509_PURPOSE_SSL_CLIENT}), X509_V_OK);

  // The CRL is empty but valid, so CRL checking passes.
  const std::string crl_pem = test::read_file(dir / "crl.pem");
  auto crl = parse_crl(crl_pem);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  EXPECT_TRUE(revoked == nullptr || sk_X509_REVOKED_num(revoked) == 0);
  EXPECT_EQ(verify(ca_pem, server_pem, {.purpose = X509_PURPOSE_SSL_SERVER, .crl_pem = crl_pem}),
            X509_V_OK);

  const auto records = certs_list(dir);
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].subject, "CN=localhost");
  EXPECT_EQ(records[0].sha256_fingerprint, sha256_fingerprint_of_pem(server_pem));
  EXPECT_FALSE(records[0].revoked);
}

TEST(CertsDir, InitRefusesToOverwriteCaUnlessForced) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});
  const std::string first_ca = test::read_file(dir / "ca.pem");
  try {
    certs_init({.dir = dir});
    FAIL() << "expected cert_error";
  } catch (const cert_error& e) {
    EXPECT_NE(std::string(e.what()).find("ca.key"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_file(dir / "ca.pem"), first_ca);

  certs_init({.dir = dir, .force = true});
  EXPECT_NE(test::read_file(dir / "ca.pem"), first_ca);
  EXPECT_EQ(mode_of(dir / "ca.key"), 0600U);
}

TEST(CertsDir, IssuePartnerWritesCertKeyAndRecord) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});
  const auto issued = certs_issue_partner(dir, "kh-ratanakiri", tmp / "kh-ratanakiri", hours(48));

  const std::string cert_pem = test::read_file(tmp / "kh-ratanakiri.pem");
  EXPECT_EQ(cert_pem, issued.cert_pem);
  EXPECT_EQ(test::read_file(tmp / "kh-ratanakiri.key"), issued.key_pem);
  EXPECT_EQ(mode_of(tmp / "kh-ratanakiri.key"), 0600U);

  auto cert = parse_cert(cert_pem);
  EXPECT_EQ(san_uris(cert.get()), std::vector<std::string>{"urn:mxgw:partner:kh-ratanakiri"});
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  const std::string ca_pem = test::read_file(dir / "ca.pem");
  EXPECT_EQ(verify(ca_pem, cert_pem, {.crl_pem = test::read_file(dir / "crl.pem")}), X509_V_OK);

  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_TRUE(days == 1 || days == 2) << days;  // 48 hours from now, give or take the clock

  const auto records = certs_list(dir);
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[1].serial_hex, issued.serial_hex);
  EXPECT_EQ(records[1].subject, "CN=kh-ratanakiri");
  EXPECT_EQ(records[1].san_uri, "urn:mxgw:partner:kh-ratanakiri");
  EXPECT_EQ(records[1].sha256_fingerprint, issued.sha256_fingerprint);
  EXPECT_FALSE(records[1].not_after.empty());
  EXPECT_FALSE(records[1].revoked);
}

TEST(CertsDir, IssuePartnerRejectsInvalidIds) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});
  const std::vector<std::string> invalid = {"",
                                            "a",
                                            "-kh",
                                            "KH-ratanakiri",
                                            "kh_ratanakiri",
                                            "kh ratanakiri",
                                            "../kh",
                                            "kh/ratanakiri",
                                            "kh-ratanakiri\n",
                                            "a" + std::string(63, 'b')};
  for (const auto& id : invalid) {
    EXPECT_THROW(certs_issue_partner(dir, id, tmp / "out"), cert_error) << '"' << id << '"';
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "out.key"));
  EXPECT_EQ(certs_list(dir).size(), 1U);
  EXPECT_NO_THROW(certs_issue_partner(dir, "k1", tmp / "short"));
  EXPECT_NO_THROW(certs_issue_partner(dir, "0" + std::string(62, '-'), tmp / "long"));
}

TEST(CertsDir, IssuePartnerNeedsAnInitialisedDir) {
  test::temp_dir tmp;
  EXPECT_THROW(certs_issue_partner(tmp / "nothing", "kh-kampot", tmp / "out"), cert_error);
}

TEST(CertsDir, RevokeBySerialIsCaseInsensitiveAndUpdatesCrl) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});
  const auto revoked = certs_issue_partner(dir, "la-sekong", tmp / "la-sekong");
  const auto kept = certs_issue_partner(dir, "la-saravan", tmp / "la-saravan");

  certs_revoke(dir, lower(revoked.serial_hex));

  const std::string ca_pem = test::read_file(dir / "ca.pem");
  const std::string crl_pem = test::read_file(dir / "crl.pem");
  EXPECT_TRUE(is_revoked_in(crl_pem, revoked.serial_hex));
  EXPECT_EQ(verify(ca_pem, revoked.cert_pem, {.crl_pem = crl_pem}), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(ca_pem, kept.cert_pem, {.crl_pem = crl_pem}), X509_V_OK);

  for (const auto& record : certs_list(dir)) {
    EXPECT_EQ(record.revoked, record.serial_hex == revoked.serial_hex) << record.serial_hex;
  }

  // Revoking again keeps it revoked; revoking the other one keeps both in the CRL.
  certs_revoke(dir, revoked.serial_hex);
  certs_revoke(dir, kept.serial_hex);
  const std::string crl2 = test::read_file(dir / "crl.pem");
  EXPECT_TRUE(is_revoked_in(crl2, revoked.serial_hex));
  EXPECT_TRUE(is_revoked_in(crl2, kept.serial_hex));
}

TEST(CertsDir, RevokeByCertificateFile) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});
  const auto issued = certs_issue_partner(dir, "th-mukdahan", tmp / "th-mukdahan");
  certs_revoke(dir, (tmp / "th-mukdahan.pem").string());
  const std::string crl_pem = test::read_file(dir / "crl.pem");
  EXPECT_EQ(verify(test::read_file(dir / "ca.pem"), issued.cert_pem, {.crl_pem = crl_pem}),
            X509_V_ERR_CERT_REVOKED);
}

TEST(CertsDir, RevokeOfUnknownSerialThrows) {
  test::temp_dir tmp;
  const auto dir = tmp / "dev";
  certs_init({.dir = dir});
  const std::string crl_before = test::read_file(dir / "crl.pem");
  EXPECT_THROW(certs_revoke(dir, "0123456789ABCDEF0123456789ABCDEF"), cert_error);
  EXPECT_THROW(certs_revoke(dir, "not-a-serial"), cert_error);
  EXPECT_THROW(certs_revoke(dir, ""), cert_error);
  EXPECT_EQ(test::read_file(dir / "crl.pem"), crl_before);

  // A certificate from another CA is unknown here even when given as a file.
  const auto other = make_ca();
  test::write_file(tmp / "foreign.pem", other.issue(partner_request("vn-dak-lak")).cert_pem);
  EXPECT_THROW(certs_revoke(dir, (tmp / "foreign.pem").string()), cert_error);
}

}  // namespace
}  // namespace mxgw::identity
