// Development/enrolment CA on OpenSSL 3's C API: EC P-256 keys, X509v3 certificates, v2 CRLs.
#include "gateway/identity/cert_authority.hpp"

#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "gateway/common/digest.hpp"
#include "gateway/common/time.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/identity/peer_identity.hpp"

namespace mxgw::identity {
namespace {

using clock = std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// RAII for OpenSSL objects.

template <auto free_fn>
struct openssl_deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    free_fn(p);
  }
};

using bio_ptr = std::unique_ptr<BIO, openssl_deleter<&BIO_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<&EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<&X509_free>>;
using crl_ptr = std::unique_ptr<X509_CRL, openssl_deleter<&X509_CRL_free>>;
using revoked_ptr = std::unique_ptr<X509_REVOKED, openssl_deleter<&X509_REVOKED_free>>;
using extension_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<&X509_EXTENSION_free>>;
using asn1_integer_ptr = std::unique_ptr<ASN1_INTEGER, openssl_deleter<&ASN1_INTEGER_free>>;
using asn1_time_ptr = std::unique_ptr<ASN1_TIME, openssl_deleter<&ASN1_TIME_free>>;
using octet_string_ptr =
    std::unique_ptr<ASN1_OCTET_STRING, openssl_deleter<&ASN1_OCTET_STRING_free>>;
using ia5_string_ptr = std::unique_ptr<ASN1_IA5STRING, openssl_deleter<&ASN1_IA5STRING_free>>;
using general_name_ptr = std::unique_ptr<GENERAL_NAME, openssl_deleter<&GENERAL_NAME_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_deleter<&GENERAL_NAMES_free>>;
using akid_ptr = std::unique_ptr<AUTHORITY_KEYID, openssl_deleter<&AUTHORITY_KEYID_free>>;
using bignum_ptr = std::unique_ptr<BIGNUM, openssl_deleter<&BN_free>>;

void free_openssl_string(char* p) noexcept {
  OPENSSL_free(p);
}
using openssl_string_ptr = std::unique_ptr<char, openssl_deleter<&free_openssl_string>>;

// ---------------------------------------------------------------------------------------------
// Errors.

/// Drains this thread's OpenSSL error queue into one readable string.
std::string drain_openssl_errors() {
  std::string out;
  for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    if (!out.empty()) {
      out += "; ";
    }
    out += buffer.data();
  }
  return out.empty() ? std::string("no OpenSSL error reported") : out;
}

/// Throws cert_error("<what>: <OpenSSL error queue>").
[[noreturn]] void fail_openssl(std::string_view what) {
  throw cert_error(std::string(what) + ": " + drain_openssl_errors());
}

template <typename T>
T* check(T* p, std::string_view what) {
  if (p == nullptr) {
    fail_openssl(what);
  }
  return p;
}

void check(int rc, std::string_view what) {
  if (rc <= 0) {
    fail_openssl(what);
  }
}

// ---------------------------------------------------------------------------------------------
// Conversions.

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
  if (size < 0 || (size > 0 && data == nullptr)) {
    fail_openssl("reading a memory BIO");
  }
  return std::string(data == nullptr ? "" : data, static_cast<std::size_t>(size));
}

bio_ptr memory_bio() {
  return bio_ptr(check(BIO_new(BIO_s_mem()), "BIO_new"));
}

bio_ptr memory_bio_of(const std::string& text) {
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw cert_error("PEM text too large");
  }
  return bio_ptr(
      check(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), "BIO_new_mem_buf"));
}

std::string to_pem(X509* cert) {
  auto bio = memory_bio();
  check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
  return bio_contents(bio.get());
}

/// PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted.
std::string to_pem(EVP_PKEY* key) {
  auto bio = memory_bio();
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  return bio_contents(bio.get());
}

std::string to_pem(X509_CRL* crl) {
  auto bio = memory_bio();
  check(PEM_write_bio_X509_CRL(bio.get(), crl), "PEM_write_bio_X509_CRL");
  return bio_contents(bio.get());
}

x509_ptr cert_from_pem(const std::string& pem, std::string_view origin) {
  auto bio = memory_bio_of(pem);
  X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr) {
    fail_openssl("no PEM certificate in " + std::string(origin));
  }
  return x509_ptr(cert);
}

pkey_ptr key_from_pem(const std::string& pem, std::string_view origin) {
  auto bio = memory_bio_of(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    fail_openssl("no PEM private key in " + std::string(origin));
  }
  return pkey_ptr(key);
}

std::string bignum_hex(const BIGNUM* bn) {
  openssl_string_ptr hex(check(BN_bn2hex(bn), "BN_bn2hex"));
  return std::string(hex.get());
}

std::string serial_hex_of(const X509* cert) {
  bignum_ptr bn(
      check(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr), "ASN1_INTEGER_to_BN"));
  return bignum_hex(bn.get());
}

std::string fingerprint_of(const X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int size = 0;
  check(X509_digest(cert, EVP_sha256(), md.data(), &size), "X509_digest");
  return lower_hex(md.data(), size);
}

std::string subject_of(const X509* cert) {
  auto bio = memory_bio();
  if (X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
    fail_openssl("X509_NAME_print_ex");
  }
  return bio_contents(bio.get());
}

}  // namespace

std::optional<std::string> normalize_serial(std::string_view text) {
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
  }
  std::string hex;
  for (const char c : text) {
    if (c == ':') {
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
    hex += c;
  }
  if (hex.empty() || hex.size() > 64) {
    return std::nullopt;
  }
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, hex.c_str()) == 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  bignum_ptr bn(raw);
  return bignum_hex(bn.get());
}

namespace {

asn1_time_ptr asn1_time_at(clock::time_point t) {
  return asn1_time_ptr(check(ASN1_TIME_set(nullptr, clock::to_time_t(t)), "ASN1_TIME_set"));
}

// ---------------------------------------------------------------------------------------------
// Building certificates.

pkey_ptr generate_p256_key() {
  return pkey_ptr(check(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "EVP_PKEY_Q_keygen"));
}

/// A random positive 128-bit serial: 16 random bytes, the top bit cleared (positive in DER without
/// a padding byte) and the next bit set (always 32 hex digits).
asn1_integer_ptr random_serial() {
  std::array<unsigned char, 16> bytes{};
  check(RAND_bytes(bytes.data(), static_cast<int>(bytes.size())), "RAND_bytes");
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x40);
  bignum_ptr bn(
      check(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr), "BN_bin2bn"));
  return asn1_integer_ptr(check(BN_to_ASN1_INTEGER(bn.get(), nullptr), "BN_to_ASN1_INTEGER"));
}

/// RFC 5280 method 1: SHA-1 over the subjectPublicKey bit string.
std::vector<unsigned char> computed_key_id(const X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int size = 0;
  check(X509_pubkey_digest(cert, EVP_sha1(), md.data(), &size), "X509_pubkey_digest");
  return std::vector<unsigned char>(md.begin(), md.begin() + size);
}

/// The issuer's subjectKeyIdentifier, read from the extension itself (not from OpenSSL's cache),
/// or computed from its public key when the certificate has none.
std::vector<unsigned char> key_id_of(const X509* cert) {
  int critical = 0;
  auto* ski = static_cast<ASN1_OCTET_STRING*>(
      X509_get_ext_d2i(cert, NID_subject_key_identifier, &critical, nullptr));
  if (ski == nullptr) {
    ERR_clear_error();
    return computed_key_id(cert);
  }
  octet_string_ptr owned(ski);
  const unsigned char* data = ASN1_STRING_get0_data(owned.get());
  return std::vector<unsigned char>(data, data + ASN1_STRING_length(owned.get()));
}

octet_string_ptr octet_string(const std::vector<unsigned char>& bytes) {
  octet_string_ptr s(check(ASN1_OCTET_STRING_new(), "ASN1_OCTET_STRING_new"));
  check(ASN1_OCTET_STRING_set(s.get(), bytes.data(), static_cast<int>(bytes.size())),
        "ASN1_OCTET_STRING_set");
  return s;
}

void add_subject_key_id(X509* cert, const std::vector<unsigned char>& key_id) {
  auto ski = octet_string(key_id);
  check(X509_add1_ext_i2d(cert, NID_subject_key_identifier, ski.get(), 0, X509V3_ADD_DEFAULT),
        "adding subjectKeyIdentifier");
}

akid_ptr authority_key_id(const std::vector<unsigned char>& key_id) {
  akid_ptr akid(check(AUTHORITY_KEYID_new(), "AUTHORITY_KEYID_new"));
  akid->keyid = octet_string(key_id).release();
  return akid;
}

/// Adds an extension given in OpenSSL's configuration syntax ("critical,CA:TRUE").
void add_conf_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, nullptr, cert, nullptr, nullptr, 0);
  extension_ptr ext(check(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value), OBJ_nid2sn(nid)));
  check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

/// Only printable ASCII without spaces may go into a dNSName or URI.
void require_ia5_token(const std::string& value, std::string_view kind) {
  const bool ok = !value.empty() && std::all_of(value.begin(), value.end(),
                                                [](char c) { return c > 0x20 && c < 0x7f; });
  if (!ok) {
    throw cert_error("invalid subjectAltName " + std::string(kind) + " \"" + value + "\"");
  }
}

void push_name(GENERAL_NAMES* names, int type, ASN1_STRING* value) {
  general_name_ptr name(GENERAL_NAME_new());
  if (name == nullptr) {
    ASN1_STRING_free(value);
    fail_openssl("GENERAL_NAME_new");
  }
  GENERAL_NAME_set0_value(name.get(), type, value);
  check(sk_GENERAL_NAME_push(names, name.get()), "sk_GENERAL_NAME_push");
  name.release();
}

void push_ia5_name(GENERAL_NAMES* names, int type, const std::string& value) {
  ia5_string_ptr s(check(ASN1_IA5STRING_new(), "ASN1_IA5STRING_new"));
  check(ASN1_STRING_set(s.get(), value.data(), static_cast<int>(value.size())), "ASN1_STRING_set");
  push_name(names, type, s.release());
}

void add_subject_alt_names(X509* cert, const certificate_request& request) {
  general_names_ptr names(check(GENERAL_NAMES_new(), "GENERAL_NAMES_new"));
  for (const auto& uri : request.san_uris) {
    require_ia5_token(uri, "URI");
    push_ia5_name(names.get(), GEN_URI, uri);
  }
  for (const auto& dns : request.san_dns) {
    require_ia5_token(dns, "DNS name");
    push_ia5_name(names.get(), GEN_DNS, dns);
  }
  for (const auto& ip : request.san_ips) {
    ASN1_OCTET_STRING* address = a2i_IPADDRESS(ip.c_str());
    if (address == nullptr || ip.find('\0') != std::string::npos) {
      ASN1_OCTET_STRING_free(address);
      ERR_clear_error();
      throw cert_error("invalid subjectAltName IP address \"" + ip + "\"");
    }
    push_name(names.get(), GEN_IPADD, address);
  }
  if (sk_GENERAL_NAME_num(names.get()) == 0) {
    return;
  }
  check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
        "adding subjectAltName");
}

/// Everything but extensions: version 3, serial, names, validity, public key.
x509_ptr new_certificate(const std::string& common_name, X509_NAME* issuer_name,
                         EVP_PKEY* subject_key, clock::time_point not_before,
                         clock::time_point not_after) {
  if (common_name.empty()) {
    throw cert_error("a certificate needs a common name");
  }
  if (not_after <= not_before) {
    throw cert_error("certificate validity ends before it begins (" + common_name + ")");
  }
  x509_ptr cert(check(X509_new(), "X509_new"));
  check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
  auto serial = random_serial();
  check(X509_set_serialNumber(cert.get(), serial.get()), "X509_set_serialNumber");
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const auto* cn = reinterpret_cast<const unsigned char*>(common_name.c_str());
  check(X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8, cn,
                                   static_cast<int>(common_name.size()), -1, 0),
        "setting the subject common name");
  check(X509_set_issuer_name(cert.get(), issuer_name == nullptr ? subject : issuer_name),
        "X509_set_issuer_name");
  check(ASN1_TIME_set(X509_getm_notBefore(cert.get()), clock::to_time_t(not_before)),
        "setting notBefore");
  check(ASN1_TIME_set(X509_getm_notAfter(cert.get()), clock::to_time_t(not_after)),
        "setting notAfter");
  check(X509_set_pubkey(cert.get(), subject_key), "X509_set_pubkey");
  return cert;
}

// ---------------------------------------------------------------------------------------------
// Files.

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw cert_error("cannot read " + path.string());
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    throw cert_error("cannot read " + path.string());
  }
  return out.str();
}

std::string errno_text(int err) {
  return std::system_category().message(err);
}

/// Flushes a directory entry (the rename) to disk; best effort.
void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::filesystem::path with_suffix(const std::filesystem::path& prefix, const char* suffix) {
  std::filesystem::path result = prefix;
  result += suffix;
  return result;
}

// ---------------------------------------------------------------------------------------------
// issued.json.

constexpr const char* ca_cert_file = "ca.pem";
constexpr const char* ca_key_file = "ca.key";
constexpr const char* server_cert_file = "server.pem";
constexpr const char* server_key_file = "server.key";
constexpr const char* crl_file = "crl.pem";
constexpr const char* issued_file = "issued.json";

struct stored_record {
  std::string serial_hex;
  std::string subject;
  std::vector<std::string> san;  // "URI:...", "DNS:...", "IP:..."
  std::string not_before;
  std::string not_after;
  std::string sha256_fingerprint;
  bool revoked = false;
  std::string revoked_at;  // RFC 3339, when revoked
};

stored_record record_of(const issued_certificate& issued, const certificate_request& request) {
  stored_record r;
  auto cert = cert_from_pem(issued.cert_pem, "the issued certificate");
  r.serial_hex = issued.serial_hex;
  r.subject = subject_of(cert.get());
  for (const auto& uri : request.san_uris) {
    r.san.push_back("URI:" + uri);
  }
  for (const auto& dns : request.san_dns) {
    r.san.push_back("DNS:" + dns);
  }
  for (const auto& ip : request.san_ips) {
    r.san.push_back("IP:" + ip);
  }
  r.not_before = format_rfc3339_ms(std::chrono::floor<std::chrono::seconds>(request.not_before));
  r.not_after = format_rfc3339_ms(std::chrono::floor<std::chrono::seconds>(request.not_after));
  r.sha256_fingerprint = issued.sha256_fingerprint;
  return r;
}

std::string string_member(const rapidjson::Value& object, const char* name,
                          const std::filesystem::path& file) {
  const auto it = object.FindMember(name);
  if (it == object.MemberEnd()) {
    return {};
  }
  if (!it->value.IsString()) {
    throw cert_error(file.string() + ": \"" + name + "\" is not a string");
  }
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::vector<stored_record> read_issued(const std::filesystem::path& dir) {
  const auto file = dir / issued_file;
  const std::string text = read_text_file(file);
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    throw cert_error(file.string() + " is not a JSON object");
  }
  const auto certs = doc.FindMember("certificates");
  if (certs == doc.MemberEnd() || !certs->value.IsArray()) {
    throw cert_error(file.string() + " has no \"certificates\" array");
  }
  std::vector<stored_record> records;
  for (const auto& entry : certs->value.GetArray()) {
    if (!entry.IsObject()) {
      throw cert_error(file.string() + ": a certificate entry is not an object");
    }
    stored_record r;
    r.serial_hex = string_member(entry, "serial", file);
    r.subject = string_member(entry, "subject", file);
    r.not_before = string_member(entry, "not_before", file);
    r.not_after = string_member(entry, "not_after", file);
    r.sha256_fingerprint = string_member(entry, "sha256_fingerprint", file);
    r.revoked_at = string_member(entry, "revoked_at", file);
    const auto san = entry.FindMember("san");
    if (san != entry.MemberEnd()) {
      if (!san->value.IsArray()) {
        throw cert_error(file.string() + ": \"san\" is not an array");
      }
      for (const auto& name : san->value.GetArray()) {
        if (!name.IsString()) {
          throw cert_error(file.string() + ": a \"san\" entry is not a string");
        }
        r.san.emplace_back(name.GetString(), name.GetStringLength());
      }
    }
    const auto revoked = entry.FindMember("revoked");
    if (revoked != entry.MemberEnd()) {
      if (!revoked->value.IsBool()) {
        throw cert_error(file.string() + ": \"revoked\" is not a boolean");
      }
      r.revoked = revoked->value.GetBool();
    }
    if (r.serial_hex.empty()) {
      throw cert_error(file.string() + ": a certificate entry has no serial");
    }
    records.push_back(std::move(r));
  }
  return records;
}

void write_issued(const std::filesystem::path& dir, const std::vector<stored_record>& records) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("format");
  w.String("mxgw-issued-certificates/1");
  w.Key("certificates");
  w.StartArray();
  for (const auto& r : records) {
    w.StartObject();
    w.Key("serial");
    w.String(r.serial_hex);
    w.Key("subject");
    w.String(r.subject);
    w.Key("san");
    w.StartArray();
    for (const auto& name : r.san) {
      w.String(name);
    }
    w.EndArray();
    w.Key("not_before");
    w.String(r.not_before);
    w.Key("not_after");
    w.String(r.not_after);
    w.Key("sha256_fingerprint");
    w.String(r.sha256_fingerprint);
    w.Key("revoked");
    w.Bool(r.revoked);
    if (r.revoked) {
      w.Key("revoked_at");
      w.String(r.revoked_at);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  std::string text(buffer.GetString(), buffer.GetSize());
  text += '\n';
  write_file_with_mode(dir / issued_file, text, 0644);
}

void append_issued(const std::filesystem::path& dir, stored_record record) {
  auto records = read_issued(dir);
  records.push_back(std::move(record));
  write_issued(dir, records);
}

std::vector<revoked_entry> revoked_entries(const std::vector<stored_record>& records) {
  std::vector<revoked_entry> out;
  for (const auto& r : records) {
    if (!r.revoked) {
      continue;
    }
    revoked_entry e;
    e.serial_hex = r.serial_hex;
    if (auto at = parse_rfc3339(r.revoked_at)) {
      e.revoked_at = *at;
    }
    out.push_back(std::move(e));
  }
  return out;
}

cert_authority load_dir_ca(const std::filesystem::path& dir) {
  return cert_authority::load(dir / ca_cert_file, dir / ca_key_file);
}

}  // namespace

// -----------------------------------------------------------------------------------------------
// cert_authority

struct cert_authority::impl {
  x509_ptr cert_;
  pkey_ptr key_;
};

cert_authority::cert_authority(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
cert_authority::cert_authority(cert_authority&&) noexcept = default;
cert_authority& cert_authority::operator=(cert_authority&&) noexcept = default;
cert_authority::~cert_authority() = default;

cert_authority cert_authority::create(const std::string& common_name,
                                      std::chrono::system_clock::time_point not_before,
                                      std::chrono::system_clock::time_point not_after) {
  ERR_clear_error();
  auto key = generate_p256_key();
  auto cert = new_certificate(common_name, nullptr, key.get(), not_before, not_after);
  add_conf_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_conf_extension(cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  const auto key_id = computed_key_id(cert.get());
  add_subject_key_id(cert.get(), key_id);
  auto akid = authority_key_id(key_id);
  check(X509_add1_ext_i2d(cert.get(), NID_authority_key_identifier, akid.get(), 0,
                          X509V3_ADD_DEFAULT),
        "adding authorityKeyIdentifier");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()), "X509_sign");
  auto p = std::make_unique<impl>();
  p->cert_ = std::move(cert);
  p->key_ = std::move(key);
  return cert_authority(std::move(p));
}

cert_authority cert_authority::load(const std::filesystem::path& cert_pem,
                                    const std::filesystem::path& key_pem) {
  ERR_clear_error();
  auto cert = cert_from_pem(read_text_file(cert_pem), cert_pem.string());
  auto key = key_from_pem(read_text_file(key_pem), key_pem.string());
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    fail_openssl("the key in " + key_pem.string() + " does not belong to the certificate in " +
                 cert_pem.string());
  }
  if (X509_check_ca(cert.get()) == 0) {
    ERR_clear_error();
    throw cert_error(cert_pem.string() + " is not a CA certificate");
  }
  auto p = std::make_unique<impl>();
  p->cert_ = std::move(cert);
  p->key_ = std::move(key);
  return cert_authority(std::move(p));
}

namespace {

/// Builds and signs a leaf certificate for `subject_key` (see cert_authority::issue).
x509_ptr sign_leaf(X509* ca_cert, EVP_PKEY* ca_key, const certificate_request& request,
                   EVP_PKEY* subject_key) {
  if (!request.omit_extended_key_usage && !request.client_auth && !request.server_auth) {
    throw cert_error(
        "the request names no extended key usage; set client_auth, server_auth or "
        "omit_extended_key_usage");
  }
  auto cert = new_certificate(request.common_name, X509_get_subject_name(ca_cert), subject_key,
                              request.not_before, request.not_after);
  add_conf_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_conf_extension(cert.get(), NID_key_usage, "critical,digitalSignature");
  if (!request.omit_extended_key_usage) {
    std::string eku;
    if (request.client_auth) {
      eku = "clientAuth";
    }
    if (request.server_auth) {
      eku += eku.empty() ? "serverAuth" : ",serverAuth";
    }
    add_conf_extension(cert.get(), NID_ext_key_usage, eku.c_str());
  }
  add_subject_key_id(cert.get(), computed_key_id(cert.get()));
  auto akid = authority_key_id(key_id_of(ca_cert));
  check(X509_add1_ext_i2d(cert.get(), NID_authority_key_identifier, akid.get(), 0,
                          X509V3_ADD_DEFAULT),
        "adding authorityKeyIdentifier");
  add_subject_alt_names(cert.get(), request);
  check(X509_sign(cert.get(), ca_key, EVP_sha256()), "X509_sign");
  return cert;
}

using req_ptr = std::unique_ptr<X509_REQ, openssl_deleter<&X509_REQ_free>>;

void free_extensions(STACK_OF(X509_EXTENSION) * exts) noexcept {
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

/// Why `key` is too weak for a partner certificate, or empty: RSA of 2048 bits or more, EC on
/// P-256 or P-384, Ed25519.
std::string key_weakness(EVP_PKEY* key) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_RSA) {
    const int bits = EVP_PKEY_get_bits(key);
    return bits >= 2048 ? std::string()
                        : "RSA key of " + std::to_string(bits) + " bits (at least 2048 needed)";
  }
  if (type == EVP_PKEY_EC) {
    std::array<char, 64> curve{};
    std::size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, "group", curve.data(), curve.size(), &length) != 1) {
      ERR_clear_error();
      return "EC key on an unnamed curve";
    }
    const std::string name(curve.data(), length);
    return name == "prime256v1" || name == "P-256" || name == "secp384r1" || name == "P-384"
               ? std::string()
               : "EC key on curve " + name + " (P-256 or P-384 needed)";
  }
  if (type == EVP_PKEY_ED25519) {
    return {};
  }
  return "key type not approved (RSA >= 2048, EC P-256/P-384 or Ed25519)";
}

}  // namespace

issued_certificate cert_authority::issue(const certificate_request& request) const {
  ERR_clear_error();
  if (!request.omit_extended_key_usage && !request.client_auth && !request.server_auth) {
    throw cert_error(
        "the request names no extended key usage; set client_auth, server_auth or "
        "omit_extended_key_usage");
  }
  auto key = generate_p256_key();
  auto cert = sign_leaf(impl_->cert_.get(), impl_->key_.get(), request, key.get());
  issued_certificate out;
  out.cert_pem = to_pem(cert.get());
  out.key_pem = to_pem(key.get());
  out.serial_hex = serial_hex_of(cert.get());
  out.sha256_fingerprint = fingerprint_of(cert.get());
  return out;
}

issued_certificate cert_authority::sign_csr(const std::string& csr_pem,
                                            const certificate_request& request,
                                            const std::vector<std::string>& allowed_uris) const {
  ERR_clear_error();
  auto bio = memory_bio_of(csr_pem);
  req_ptr csr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!csr) {
    ERR_clear_error();
    throw csr_refused("not a PEM certificate signing request");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
  if (key == nullptr) {
    ERR_clear_error();
    throw csr_refused("the request carries no readable public key");
  }
  // Proof of possession: the request is signed with the key it asks a certificate for.
  if (X509_REQ_verify(csr.get(), key) != 1) {
    ERR_clear_error();
    throw csr_refused("the request's signature does not verify with its own key");
  }
  if (auto weak = key_weakness(key); !weak.empty()) {
    throw csr_refused("weak key: " + weak);
  }
  // Names the request asks for: a partner or admin URI other than the allowed ones is refused
  // outright (the certificate carries only the names we put in, never the request's).
  std::unique_ptr<STACK_OF(X509_EXTENSION), openssl_deleter<&free_extensions>> exts(
      X509_REQ_get_extensions(csr.get()));
  ERR_clear_error();
  if (exts) {
    for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
      X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
      if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) {
        continue;
      }
      general_names_ptr names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
      if (!names) {
        ERR_clear_error();
        throw csr_refused("the request's subjectAltName cannot be read");
      }
      for (int k = 0; k < sk_GENERAL_NAME_num(names.get()); ++k) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), k);
        if (name->type != GEN_URI) {
          continue;
        }
        const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
        const std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                               static_cast<std::size_t>(ASN1_STRING_length(uri)));
        if (std::find(allowed_uris.begin(), allowed_uris.end(), text) != allowed_uris.end()) {
          continue;
        }
        if (text.starts_with(admin_uri_prefix)) {
          throw csr_refused("the request names an administrator (" + text + ")");
        }
        if (text.starts_with(partner_uri_prefix)) {
          throw csr_refused("the request names another partner (" + text + ")");
        }
      }
    }
  }
  auto cert = sign_leaf(impl_->cert_.get(), impl_->key_.get(), request, key);
  issued_certificate out;
  out.cert_pem = to_pem(cert.get());
  out.serial_hex = serial_hex_of(cert.get());
  out.sha256_fingerprint = fingerprint_of(cert.get());
  return out;
}

std::string cert_authority::make_crl(const std::vector<revoked_entry>& revoked,
                                     std::chrono::hours validity) const {
  ERR_clear_error();
  if (validity <= std::chrono::hours(0)) {
    throw cert_error("CRL validity must be positive");
  }
  crl_ptr crl(check(X509_CRL_new(), "X509_CRL_new"));
  check(X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2), "X509_CRL_set_version");
  check(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(impl_->cert_.get())),
        "X509_CRL_set_issuer_name");
  // lastUpdate is backdated like a certificate's notBefore: a verifier whose clock is behind
  // ours (another machine, or OpenSSL's own time(), which reads the coarse clock and can lag
  // system_clock by a tick) would otherwise find a CRL made this second "not yet valid" and
  // refuse every certificate it covers.
  const auto now = clock::now();
  check(X509_CRL_set1_lastUpdate(crl.get(), asn1_time_at(now - crl_backdating).get()),
        "setting lastUpdate");
  check(X509_CRL_set1_nextUpdate(crl.get(), asn1_time_at(now + validity).get()),
        "setting nextUpdate");

  for (const auto& entry : revoked) {
    const auto serial_hex = normalize_serial(entry.serial_hex);
    if (!serial_hex) {
      throw cert_error("invalid serial \"" + entry.serial_hex + "\" in the revocation list");
    }
    BIGNUM* raw = nullptr;
    check(BN_hex2bn(&raw, serial_hex->c_str()), "BN_hex2bn");
    bignum_ptr bn(raw);
    asn1_integer_ptr serial(check(BN_to_ASN1_INTEGER(bn.get(), nullptr), "BN_to_ASN1_INTEGER"));
    revoked_ptr rev(check(X509_REVOKED_new(), "X509_REVOKED_new"));
    check(X509_REVOKED_set_serialNumber(rev.get(), serial.get()), "X509_REVOKED_set_serialNumber");
    check(X509_REVOKED_set_revocationDate(rev.get(), asn1_time_at(entry.revoked_at).get()),
          "X509_REVOKED_set_revocationDate");
    check(X509_CRL_add0_revoked(crl.get(), rev.get()), "X509_CRL_add0_revoked");
    rev.release();  // owned by the CRL now
  }
  check(X509_CRL_sort(crl.get()), "X509_CRL_sort");

  // CRL numbers must increase; milliseconds since the epoch do without stored state.
  asn1_integer_ptr number(check(ASN1_INTEGER_new(), "ASN1_INTEGER_new"));
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  check(ASN1_INTEGER_set_int64(number.get(), static_cast<int64_t>(ms)), "ASN1_INTEGER_set_int64");
  check(X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, X509V3_ADD_DEFAULT),
        "adding cRLNumber");
  auto akid = authority_key_id(key_id_of(impl_->cert_.get()));
  check(X509_CRL_add1_ext_i2d(crl.get(), NID_authority_key_identifier, akid.get(), 0,
                              X509V3_ADD_DEFAULT),
        "adding authorityKeyIdentifier to the CRL");
  check(X509_CRL_sign(crl.get(), impl_->key_.get(), EVP_sha256()), "X509_CRL_sign");
  return to_pem(crl.get());
}

std::string cert_authority::cert_pem() const {
  return to_pem(impl_->cert_.get());
}

std::string cert_authority::key_pem() const {
  return to_pem(impl_->key_.get());
}

// -----------------------------------------------------------------------------------------------
// Free functions

std::string sha256_fingerprint_of_pem(const std::string& cert_pem) {
  ERR_clear_error();
  auto cert = cert_from_pem(cert_pem, "the given PEM text");
  return fingerprint_of(cert.get());
}

std::vector<std::string> sha256_fingerprints_of_pem_bundle(const std::string& pem) {
  ERR_clear_error();
  auto bio = memory_bio_of(pem);
  // What SSL_CTX_load_verify_locations() reads from a file: every certificate block, trusted
  // ("BEGIN TRUSTED CERTIFICATE") ones included, in order.
  using info_stack = STACK_OF(X509_INFO);
  std::unique_ptr<info_stack, void (*)(info_stack*)> infos(
      PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr),
      [](info_stack* s) { sk_X509_INFO_pop_free(s, X509_INFO_free); });
  ERR_clear_error();
  std::vector<std::string> out;
  if (!infos) {
    return out;
  }
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    const X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
    if (info->x509 != nullptr) {
      out.push_back(fingerprint_of(info->x509));
    }
  }
  return out;
}

std::vector<std::string> sha256_fingerprints_of_pem_file(const std::filesystem::path& pem_file) {
  std::ifstream in(pem_file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return sha256_fingerprints_of_pem_bundle(text.str());
}

void write_file_with_mode(const std::filesystem::path& path, const std::string& contents,
                          unsigned mode) {
  const auto parent = path.parent_path();
  std::array<unsigned char, 8> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    fail_openssl("RAND_bytes");
  }
  auto temp = path;
  temp += ".tmp-" + std::to_string(::getpid()) + "-" + lower_hex(random.data(), random.size());

  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                        static_cast<mode_t>(mode));
  if (fd < 0) {
    const int err = errno;
    throw cert_error("cannot create " + temp.string() + ": " + errno_text(err));
  }
  const auto give_up = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw cert_error("cannot " + what + " " + path.string() + ": " + errno_text(err));
  };
  // The umask may have narrowed the mode; set exactly what was asked (never wider than asked).
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    give_up("set the mode of", errno);
  }
  std::size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      give_up("write", errno);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    give_up("flush", errno);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw cert_error("cannot close " + path.string() + ": " + errno_text(err));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw cert_error("cannot rename into " + path.string() + ": " + errno_text(err));
  }
  fsync_directory(parent);
}

void certs_init(const certs_dir_options& options) {
  ERR_clear_error();
  const auto& dir = options.dir;
  if (dir.empty()) {
    throw cert_error("no certificate directory given");
  }
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    if (dir.has_parent_path()) {
      std::filesystem::create_directories(dir.parent_path(), ec);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      const int err = errno;
      throw cert_error("cannot create " + dir.string() + ": " + errno_text(err));
    }
  } else if (!std::filesystem::is_directory(dir, ec)) {
    throw cert_error(dir.string() + " exists and is not a directory");
  }
  const auto ca_key = dir / ca_key_file;
  if (!options.force && std::filesystem::exists(ca_key, ec)) {
    throw cert_error(ca_key.string() + " already exists; use --force to replace the CA");
  }

  const auto now = clock::now();
  const auto ca = cert_authority::create(options.ca_name, now - std::chrono::minutes(5),
                                         now + std::chrono::hours(24 * 365 * 10));
  certificate_request server;
  server.common_name = "localhost";
  server.san_dns = {"localhost"};
  server.san_ips = {"127.0.0.1", "::1"};
  server.server_auth = true;
  server.client_auth = true;  // the gateway presents it as its client certificate too
  server.not_before = now - std::chrono::minutes(5);
  server.not_after = now + std::chrono::hours(24 * 825);
  const auto issued = ca.issue(server);

  write_file_with_mode(ca_key, ca.key_pem(), 0600);
  write_file_with_mode(dir / ca_cert_file, ca.cert_pem(), 0644);
  write_file_with_mode(dir / server_key_file, issued.key_pem, 0600);
  write_file_with_mode(dir / server_cert_file, issued.cert_pem, 0644);
  write_file_with_mode(dir / crl_file, ca.make_crl({}), 0644);
  write_issued(dir, {record_of(issued, server)});
  // The administrators' own CA and a development admin certificate (admin.pem/admin.key).
  if (options.force) {
    std::filesystem::remove(dir / "admin-ca.key", ec);
  }
  certs_init_admin(dir, "dev");
}

issued_certificate certs_issue_partner(const std::filesystem::path& dir,
                                       const std::string& partner_id,
                                       const std::filesystem::path& out_prefix,
                                       std::chrono::hours validity) {
  ERR_clear_error();
  if (!is_valid_partner_id(partner_id)) {  // ^[a-z0-9][a-z0-9-]{1,62}$, shared with the registry
    throw cert_error("invalid partner id \"" + partner_id +
                     "\" (expected ^[a-z0-9][a-z0-9-]{1,62}$)");
  }
  if (validity <= std::chrono::hours(0)) {
    throw cert_error("certificate validity must be positive");
  }
  if (out_prefix.empty()) {
    throw cert_error("no output prefix given");
  }
  const auto ca = load_dir_ca(dir);
  read_issued(dir);  // fail before issuing when the record file is missing or broken

  certificate_request request;
  request.common_name = partner_id;
  request.san_uris = {std::string(partner_uri_prefix) + partner_id};
  request.client_auth = true;
  request.server_auth = false;
  const auto now = clock::now();
  request.not_before = now - std::chrono::minutes(5);
  request.not_after = now + validity;
  auto issued = ca.issue(request);

  write_file_with_mode(with_suffix(out_prefix, ".key"), issued.key_pem, 0600);
  write_file_with_mode(with_suffix(out_prefix, ".pem"), issued.cert_pem, 0644);
  append_issued(dir, record_of(issued, request));
  return issued;
}

void certs_revoke(const std::filesystem::path& dir, const std::string& serial_or_cert_file) {
  ERR_clear_error();
  std::optional<std::string> serial;
  std::string fingerprint;  // set when a certificate file was given
  std::error_code ec;
  if (!serial_or_cert_file.empty() &&
      std::filesystem::is_regular_file(std::filesystem::path(serial_or_cert_file), ec)) {
    auto cert = cert_from_pem(read_text_file(serial_or_cert_file), serial_or_cert_file);
    serial = serial_hex_of(cert.get());
    fingerprint = fingerprint_of(cert.get());
  } else {
    serial = normalize_serial(serial_or_cert_file);
    if (!serial) {
      throw cert_error("\"" + serial_or_cert_file +
                       "\" is neither a hexadecimal serial nor a certificate file");
    }
  }

  const auto ca = load_dir_ca(dir);
  auto records = read_issued(dir);
  const auto it = std::find_if(records.begin(), records.end(), [&](const stored_record& r) {
    return normalize_serial(r.serial_hex) == serial;
  });
  if (it == records.end()) {
    throw cert_error("no certificate with serial " + *serial + " in " +
                     (dir / issued_file).string());
  }
  if (!fingerprint.empty() && !it->sha256_fingerprint.empty() &&
      it->sha256_fingerprint != fingerprint) {
    throw cert_error(serial_or_cert_file + " has serial " + *serial +
                     " but was not issued by the CA in " + dir.string());
  }
  if (!it->revoked) {
    it->revoked = true;
    it->revoked_at = format_rfc3339_ms(std::chrono::floor<std::chrono::seconds>(clock::now()));
  }
  // The CRL first: if recording fails afterwards, the certificate is still refused.
  write_file_with_mode(dir / crl_file, ca.make_crl(revoked_entries(records)), 0644);
  write_issued(dir, records);
}

std::vector<issued_record> certs_list(const std::filesystem::path& dir) {
  std::vector<issued_record> out;
  for (const auto& r : read_issued(dir)) {
    issued_record rec;
    rec.serial_hex = r.serial_hex;
    rec.subject = r.subject;
    for (const auto& name : r.san) {
      if (name.rfind("URI:", 0) == 0) {
        rec.san_uri = name.substr(4);
        break;
      }
    }
    rec.not_after = r.not_after;
    rec.sha256_fingerprint = r.sha256_fingerprint;
    rec.revoked = r.revoked;
    out.push_back(std::move(rec));
  }
  return out;
}

certificate_description describe_certificate(const std::string& cert_pem) {
  ERR_clear_error();
  auto cert = cert_from_pem(cert_pem, "the given PEM text");
  certificate_description d;
  d.serial_hex = serial_hex_of(cert.get());
  d.sha256_fingerprint = fingerprint_of(cert.get());
  d.subject = subject_of(cert.get());
  auto when = [](const ASN1_TIME* t) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1) {
      ERR_clear_error();
      return std::string();
    }
    return format_rfc3339_ms(
        std::chrono::floor<std::chrono::seconds>(clock::from_time_t(::timegm(&tm))));
  };
  d.not_before = when(X509_get0_notBefore(cert.get()));
  d.not_after = when(X509_get0_notAfter(cert.get()));
  d.is_ca = X509_check_ca(cert.get()) != 0;
  d.client_auth = (X509_get_extension_flags(cert.get()) & EXFLAG_XKUSAGE) != 0 &&
                  (X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT) != 0;
  const auto facts = facts_of(cert.get());
  d.partner_uris = facts.partner_uris;
  d.admin_uris = facts.admin_uris;
  ERR_clear_error();
  return d;
}

issued_certificate certs_sign_partner_csr(const std::filesystem::path& dir,
                                          const std::string& partner_id, const std::string& csr_pem,
                                          std::chrono::hours validity) {
  ERR_clear_error();
  if (!is_valid_partner_id(partner_id)) {
    throw cert_error("invalid partner id \"" + partner_id + "\"");
  }
  if (validity <= std::chrono::hours(0)) {
    throw cert_error("certificate validity must be positive");
  }
  const auto ca = load_dir_ca(dir);
  read_issued(dir);  // fail before signing when the record file is missing or broken
  certificate_request request;
  request.common_name = partner_id;
  request.san_uris = {std::string(partner_uri_prefix) + partner_id};
  request.client_auth = true;
  const auto now = clock::now();
  request.not_before = now - std::chrono::minutes(5);
  request.not_after = now + validity;
  auto issued = ca.sign_csr(csr_pem, request, request.san_uris);
  append_issued(dir, record_of(issued, request));
  return issued;
}

void certs_init_admin(const std::filesystem::path& dir, const std::string& admin_name) {
  ERR_clear_error();
  if (!is_valid_admin_name(admin_name)) {
    throw cert_error("invalid admin name \"" + admin_name +
                     "\" (expected ^[a-z0-9][a-z0-9._-]{0,62}$)");
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw cert_error(dir.string() + " is not a certificate directory (run certs init first)");
  }
  const auto now = clock::now();
  const auto ca_key = dir / "admin-ca.key";
  const auto ca_cert = dir / "admin-ca.pem";
  std::optional<cert_authority> ca;
  if (std::filesystem::exists(ca_key, ec)) {
    ca.emplace(cert_authority::load(ca_cert, ca_key));
  } else {
    ca.emplace(cert_authority::create("mxgw development admin CA", now - std::chrono::minutes(5),
                                      now + std::chrono::hours(24 * 365 * 10)));
    write_file_with_mode(ca_key, ca->key_pem(), 0600);
    write_file_with_mode(ca_cert, ca->cert_pem(), 0644);
    write_file_with_mode(dir / "admin-crl.pem", ca->make_crl({}), 0644);
  }
  certificate_request request;
  request.common_name = "admin " + admin_name;
  request.san_uris = {std::string(admin_uri_prefix) + admin_name};
  request.client_auth = true;
  request.not_before = now - std::chrono::minutes(5);
  request.not_after = now + std::chrono::hours(24 * 365);
  const auto issued = ca->issue(request);
  const std::string prefix = admin_name == "dev" ? "admin" : "admin-" + admin_name;
  write_file_with_mode(dir / (prefix + ".key"), issued.key_pem, 0600);
  write_file_with_mode(dir / (prefix + ".pem"), issued.cert_pem, 0644);
}

bool certs_dir_knows_serial(const std::filesystem::path& dir, const std::string& serial_hex) {
  std::error_code ec;
  if (!std::filesystem::exists(dir / issued_file, ec)) {
    return false;
  }
  const auto wanted = normalize_serial(serial_hex);
  for (const auto& r : read_issued(dir)) {
    if (normalize_serial(r.serial_hex) == wanted) {
      return true;
    }
  }
  return false;
}

}  // namespace mxgw::identity
